package netlab

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
)

func TestOverlaps(t *testing.T) {
	routes := `default via 192.0.2.1 dev eth0
192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2
10.77.3.0/24 dev other proto kernel
local 10.77.9.5 dev lo table local
blackhole 10.77.12.0/22
broadcast 127.255.255.255 dev lo table local`
	tests := []struct {
		cidr string
		want bool
	}{
		{"10.77.0.0/24", false},
		{"10.77.3.0/24", true},  // same network
		{"10.77.9.0/24", true},  // a local address inside it
		{"10.77.13.0/24", true}, // inside a wider blackhole
		{"192.0.2.0/24", true},
		{"10.0.0.0/8", true}, // contains routed networks
		{"10.78.0.0/24", false},
	}
	for _, tt := range tests {
		_, n, _ := net.ParseCIDR(tt.cidr)
		if got := Overlaps(routes, n); got != tt.want {
			t.Errorf("Overlaps(%s) = %v, want %v", tt.cidr, got, tt.want)
		}
	}
	if got := addrColumn("2: eth0    inet 10.77.4.2/24 brd 10.77.4.255 scope global eth0\n"); got != "10.77.4.2/24\n" {
		t.Errorf("addrColumn = %q", got)
	}
}

// TestLabLifecycle builds a real lab (root only), partitions and cuts, and checks Close leaves
// nothing behind.
func TestLabLifecycle(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	ctx := context.Background()
	l, err := New(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(ctx)
	if err := l.Partition(ctx, []int{0}, []int{1, 2}); err != nil {
		t.Fatal(err)
	}
	out, err := run(ctx, "ip", "-n", l.Nodes[0].Netns, "route")
	if err != nil || !strings.Contains(out, "blackhole "+l.Nodes[2].IP.String()) {
		t.Fatalf("no blackhole route in node 0: %q %v", out, err)
	}
	// The host still reaches a partitioned node through the bridge.
	if out, err := l.Exec(0, "ip", "route", "get", l.Gateway.String()).CombinedOutput(); err != nil || strings.Contains(string(out), "blackhole") {
		t.Fatalf("node 0 cannot reach the host: %s %v", out, err)
	}
	if err := l.Cut(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := l.HealAll(ctx); err != nil {
		t.Fatal(err)
	}
	if out, _ := run(ctx, "ip", "-n", l.Nodes[0].Netns, "route"); strings.Contains(out, "blackhole") {
		t.Fatalf("HealAll left routes: %q", out)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	left, err := Leftovers()
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range left {
		if strings.Contains(x, l.ID) {
			t.Fatalf("Close left %s", x)
		}
	}
}
