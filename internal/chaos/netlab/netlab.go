// Package netlab builds the fault campaign's network: a host bridge with a private /24, and one
// network namespace per node joined to it by a veth pair. It cuts and heals links (a pulled cable)
// and partitions nodes from each other with routes inside their namespaces. Everything it creates is
// named with one unique prefix and removed by Close. It shells out to iproute2 (`ip`).
package netlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Prefix starts the name of every bridge, link and namespace a Lab creates.
const Prefix = "scx"

// Node is the network of one node.
type Node struct {
	Netns    string // name under /run/netns
	HostVeth string // host end of the veth pair, on the bridge
	IP       net.IP
}

// Lab is one campaign's network.
type Lab struct {
	ID      string // random part of every name
	Bridge  string
	Network *net.IPNet
	Gateway net.IP // the bridge's address: where the host reaches the nodes from
	Nodes   []Node

	mu      sync.Mutex
	blocked map[[2]int]bool // routes blackholed: [from][to]
	closed  bool
}

// New claims a free 10.77.x.0/24 (one no existing route overlaps), creates the bridge and n
// namespaces. On error it removes what it made.
func New(ctx context.Context, n int) (_ *Lab, retErr error) {
	if n < 1 || n > 200 {
		return nil, fmt.Errorf("cannot build a lab of %d nodes", n)
	}
	id := make([]byte, 3)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("cannot pick a lab id: %w", err)
	}
	l := &Lab{ID: hex.EncodeToString(id), blocked: map[[2]int]bool{}}
	l.Bridge = Prefix + l.ID + "b" // 10 chars: interface names are at most 15
	routes, err := run(ctx, "ip", "-4", "route", "show", "table", "all")
	if err != nil {
		return nil, fmt.Errorf("cannot list routes: %w", err)
	}
	addrs, err := run(ctx, "ip", "-4", "-o", "addr", "show")
	if err != nil {
		return nil, fmt.Errorf("cannot list addresses: %w", err)
	}
	for i := 0; i < 250 && l.Network == nil; i++ {
		_, network, _ := net.ParseCIDR(fmt.Sprintf("10.77.%d.0/24", i))
		if Overlaps(routes, network) || Overlaps(addrColumn(addrs), network) {
			continue
		}
		l.Network = network
		l.Gateway = net.IPv4(10, 77, byte(i), 1).To4()
	}
	if l.Network == nil {
		return nil, errors.New("cannot find a free /24 in 10.77.0.0/16: every one overlaps a route")
	}
	defer func() {
		if retErr != nil {
			_ = l.Close(context.WithoutCancel(ctx))
		}
	}()
	steps := [][]string{
		{"ip", "link", "add", l.Bridge, "type", "bridge"},
		{"ip", "addr", "add", l.Gateway.String() + "/24", "dev", l.Bridge},
		{"ip", "link", "set", l.Bridge, "up"},
	}
	if err := runAll(ctx, steps); err != nil {
		return nil, fmt.Errorf("cannot create bridge %s: %w", l.Bridge, err)
	}
	for i := 0; i < n; i++ {
		ip := net.IPv4(l.Gateway[0], l.Gateway[1], l.Gateway[2], byte(10+i)).To4()
		node := Node{Netns: fmt.Sprintf("%s%sn%d", Prefix, l.ID, i), HostVeth: fmt.Sprintf("%s%sv%d", Prefix, l.ID, i), IP: ip}
		l.Nodes = append(l.Nodes, node)
		if err := l.setupNode(ctx, node); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func (l *Lab) setupNode(ctx context.Context, n Node) error {
	peer := n.HostVeth + "p"
	steps := [][]string{
		{"ip", "netns", "add", n.Netns},
		{"ip", "link", "add", n.HostVeth, "type", "veth", "peer", "name", peer, "netns", n.Netns},
		{"ip", "link", "set", n.HostVeth, "master", l.Bridge},
		{"ip", "link", "set", n.HostVeth, "up"},
		{"ip", "-n", n.Netns, "link", "set", peer, "name", "eth0"},
		{"ip", "-n", n.Netns, "addr", "add", n.IP.String() + "/24", "dev", "eth0"},
		{"ip", "-n", n.Netns, "link", "set", "eth0", "up"},
		{"ip", "-n", n.Netns, "link", "set", "lo", "up"},
	}
	if err := runAll(ctx, steps); err != nil {
		return fmt.Errorf("cannot set up namespace %s: %w", n.Netns, err)
	}
	return nil
}

// Cut takes node i's link down: nothing reaches it and it reaches nothing, silently, like a pulled
// cable. Heal brings it back.
func (l *Lab) Cut(ctx context.Context, i int) error { return l.setLink(ctx, i, "down") }

// Heal brings node i's link back up.
func (l *Lab) Heal(ctx context.Context, i int) error { return l.setLink(ctx, i, "up") }

func (l *Lab) setLink(ctx context.Context, i int, state string) error {
	if i < 0 || i >= len(l.Nodes) {
		return fmt.Errorf("no node %d", i)
	}
	if _, err := run(ctx, "ip", "link", "set", l.Nodes[i].HostVeth, state); err != nil {
		return fmt.Errorf("cannot set link of node %d %s: %w", i, state, err)
	}
	return nil
}

// Partition separates side a from side b: every node of each side gets a blackhole route to each
// node of the other, so they cannot exchange a packet while both still reach the host and their own
// side. Nodes on neither side are untouched.
func (l *Lab) Partition(ctx context.Context, a, b []int) error {
	for _, i := range a {
		for _, j := range b {
			if err := l.block(ctx, i, j); err != nil {
				return err
			}
			if err := l.block(ctx, j, i); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *Lab) block(ctx context.Context, from, to int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := [2]int{from, to}
	if l.blocked[key] || from == to {
		return nil
	}
	if _, err := run(ctx, "ip", "-n", l.Nodes[from].Netns, "route", "add", "blackhole", l.Nodes[to].IP.String()+"/32"); err != nil {
		return fmt.Errorf("cannot block node %d from node %d: %w", from, to, err)
	}
	l.blocked[key] = true
	return nil
}

// HealAll removes every partition route and brings every link up.
func (l *Lab) HealAll(ctx context.Context) error {
	var errs []error
	l.mu.Lock()
	for key := range l.blocked {
		if _, err := run(ctx, "ip", "-n", l.Nodes[key[0]].Netns, "route", "del", "blackhole", l.Nodes[key[1]].IP.String()+"/32"); err != nil {
			errs = append(errs, fmt.Errorf("cannot unblock node %d from %d: %w", key[0], key[1], err))
			continue
		}
		delete(l.blocked, key)
	}
	l.mu.Unlock()
	for i := range l.Nodes {
		if err := l.Heal(ctx, i); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Exec returns a command that runs argv inside node i's namespace.
func (l *Lab) Exec(i int, argv ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", l.Nodes[i].Netns}, argv...)...)
}

// Close removes the namespaces, veth pairs and the bridge. Missing pieces are fine, so it can run
// twice (from a signal handler and a deferred call).
func (l *Lab) Close(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	var errs []error
	for _, n := range l.Nodes {
		if err := deleteLink(ctx, n.HostVeth); err != nil {
			errs = append(errs, err)
		}
		if err := deleteNetns(ctx, n.Netns); err != nil {
			errs = append(errs, err)
		}
	}
	if err := deleteLink(ctx, l.Bridge); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Leftovers lists the namespaces and links with this package's prefix that exist on the host:
// after a clean run there are none.
func Leftovers() ([]string, error) {
	var out []string
	for _, dir := range []string{"/run/netns", "/sys/class/net"} {
		entries, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("cannot list %s: %w", dir, err)
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), Prefix) {
				out = append(out, filepath.Join(dir, e.Name()))
			}
		}
	}
	return out, nil
}

func deleteLink(ctx context.Context, name string) error {
	if _, err := os.Stat(filepath.Join("/sys/class/net", name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := run(ctx, "ip", "link", "del", name); err != nil && !strings.Contains(err.Error(), "Cannot find device") {
		return fmt.Errorf("cannot delete link %s: %w", name, err)
	}
	return nil
}

func deleteNetns(ctx context.Context, name string) error {
	if _, err := os.Stat(filepath.Join("/run/netns", name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := run(ctx, "ip", "netns", "del", name); err != nil {
		return fmt.Errorf("cannot delete namespace %s: %w", name, err)
	}
	return nil
}

// Overlaps reports whether any destination in `ip route` output (first field, or the second after
// a route type such as "local") overlaps network.
func Overlaps(routes string, network *net.IPNet) bool {
	for _, line := range strings.Split(routes, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		dst := fields[0]
		switch dst {
		case "default":
			continue
		case "local", "broadcast", "unreachable", "blackhole", "prohibit", "throw", "unicast", "multicast", "anycast", "nat":
			if len(fields) < 2 {
				continue
			}
			dst = fields[1]
		}
		if !strings.Contains(dst, "/") {
			dst += "/32"
		}
		_, rn, err := net.ParseCIDR(dst)
		if err != nil || rn.IP.To4() == nil {
			continue
		}
		if rn.Contains(network.IP) || network.Contains(rn.IP) {
			return true
		}
	}
	return false
}

// addrColumn turns `ip -o addr show` lines into route-like lines holding just the CIDR, so Overlaps
// can check addresses too.
func addrColumn(out string) string {
	var b strings.Builder
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet" {
				b.WriteString(f[i+1] + "\n")
			}
		}
	}
	return b.String()
}

func runAll(ctx context.Context, steps [][]string) error {
	for _, argv := range steps {
		if _, err := run(ctx, argv[0], argv[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// run runs one command with a bound on its time, returning its output or an error holding it.
func run(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}
