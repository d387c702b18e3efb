// Package podnet gives each pod of the local cluster its own network namespace: a bridge on the host
// with a private /24, one veth pair per pod with the pod end renamed eth0 inside the namespace. It
// shells out to iproute2 (`ip`), which is simpler to keep correct than netlink code and needs nothing
// beyond what a Debian host has.
package podnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// NetnsDir is where `ip netns add` pins named namespaces.
const NetnsDir = "/run/netns"

// Subnet is the pod network of one local cluster.
type Subnet struct {
	Bridge  string     // host bridge name, e.g. lcbr0
	Network *net.IPNet // the /24
	Gateway net.IP     // the bridge's own address (.1), where pods reach the host
}

// Allocate claims the first free subnet 10.213.<i>.0/24 with bridge lcbr<i>. Creating the bridge is the
// claim: the kernel refuses a second link of the same name, so two clusters started at once never share
// a subnet. A subnet that any existing route overlaps is skipped so that the pod network can never
// shadow a real network of the machine.
func Allocate(ctx context.Context) (Subnet, error) {
	routes, err := run(ctx, "ip", "-4", "route", "show", "table", "all")
	if err != nil {
		return Subnet{}, fmt.Errorf("cannot list routes: %w", err)
	}
	for i := 0; i < 64; i++ {
		_, network, _ := net.ParseCIDR(fmt.Sprintf("10.213.%d.0/24", i))
		if routesOverlap(routes, network) {
			continue
		}
		s := Subnet{Bridge: fmt.Sprintf("lcbr%d", i), Network: network, Gateway: net.IPv4(10, 213, byte(i), 1).To4()}
		if _, err := run(ctx, "ip", "link", "add", s.Bridge, "type", "bridge"); err != nil {
			if strings.Contains(err.Error(), "File exists") {
				continue
			}
			return Subnet{}, fmt.Errorf("cannot create bridge %s: %w", s.Bridge, err)
		}
		if err := s.configureBridge(ctx); err != nil {
			_ = DeleteLink(ctx, s.Bridge)
			return Subnet{}, err
		}
		return s, nil
	}
	return Subnet{}, errors.New("cannot find a free pod subnet in 10.213.0.0/18")
}

func (s Subnet) configureBridge(ctx context.Context) error {
	ones, _ := s.Network.Mask.Size()
	if _, err := run(ctx, "ip", "addr", "add", fmt.Sprintf("%s/%d", s.Gateway, ones), "dev", s.Bridge); err != nil {
		return fmt.Errorf("cannot address bridge %s: %w", s.Bridge, err)
	}
	if _, err := run(ctx, "ip", "link", "set", s.Bridge, "up"); err != nil {
		return fmt.Errorf("cannot bring up bridge %s: %w", s.Bridge, err)
	}
	return nil
}

// ParseSubnet rebuilds a Subnet from its recorded bridge name, CIDR and gateway.
func ParseSubnet(bridge, cidr, gateway string) (Subnet, error) {
	_, network, err := net.ParseCIDR(cidr)
	if err != nil {
		return Subnet{}, fmt.Errorf("cannot parse pod CIDR %q: %w", cidr, err)
	}
	gw := net.ParseIP(gateway).To4()
	if gw == nil {
		return Subnet{}, fmt.Errorf("cannot parse gateway %q", gateway)
	}
	return Subnet{Bridge: bridge, Network: network, Gateway: gw}, nil
}

func routesOverlap(routes string, network *net.IPNet) bool {
	for _, line := range strings.Split(routes, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		dst := fields[0]
		if dst == "default" || dst == "broadcast" || dst == "local" || dst == "unreachable" {
			if len(fields) < 2 || dst == "default" {
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

// Pod is the network of one pod.
type Pod struct {
	Netns    string // name under /run/netns
	HostVeth string // host end of the veth pair, attached to the bridge
	IP       net.IP
}

// NetnsPath is the file that names the pod's namespace for setns(2) and nsenter(1).
func (p Pod) NetnsPath() string { return filepath.Join(NetnsDir, p.Netns) }

// SetupPod creates the namespace and the veth pair and addresses eth0. On error it removes what it made.
func (s Subnet) SetupPod(ctx context.Context, p Pod) (retErr error) {
	if _, err := run(ctx, "ip", "netns", "add", p.Netns); err != nil {
		return fmt.Errorf("cannot create network namespace %s: %w", p.Netns, err)
	}
	defer func() {
		if retErr != nil {
			_ = s.TeardownPod(context.WithoutCancel(ctx), p)
		}
	}()
	// The peer is created with a unique temporary name straight inside the namespace, then renamed:
	// creating it as eth0 on the host would collide between pods.
	peer := p.HostVeth + "p"
	ones, _ := s.Network.Mask.Size()
	steps := [][]string{
		{"ip", "link", "add", p.HostVeth, "type", "veth", "peer", "name", peer, "netns", p.Netns},
		{"ip", "link", "set", p.HostVeth, "master", s.Bridge},
		{"ip", "link", "set", p.HostVeth, "up"},
		{"ip", "-n", p.Netns, "link", "set", peer, "name", "eth0"},
		{"ip", "-n", p.Netns, "addr", "add", fmt.Sprintf("%s/%d", p.IP, ones), "dev", "eth0"},
		{"ip", "-n", p.Netns, "link", "set", "eth0", "up"},
		{"ip", "-n", p.Netns, "link", "set", "lo", "up"},
	}
	for _, argv := range steps {
		if _, err := run(ctx, argv[0], argv[1:]...); err != nil {
			return fmt.Errorf("cannot set up network of pod namespace %s: %w", p.Netns, err)
		}
	}
	return nil
}

// TeardownPod removes the veth pair (deleting one end deletes both) and the namespace. Missing pieces
// are not an error, so teardown can be repeated.
func (s Subnet) TeardownPod(ctx context.Context, p Pod) error {
	var errs []error
	if err := DeleteLink(ctx, p.HostVeth); err != nil {
		errs = append(errs, err)
	}
	if err := DeleteNetns(ctx, p.Netns); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// SetLink brings the host end of a pod's veth down (cut off) or up (healed). Down on the host end makes
// every packet to and from the pod vanish, like a pulled cable.
func SetLink(ctx context.Context, hostVeth string, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	if _, err := run(ctx, "ip", "link", "set", hostVeth, state); err != nil {
		return fmt.Errorf("cannot set link %s %s: %w", hostVeth, state, err)
	}
	return nil
}

// DeleteLink deletes a link; a link that does not exist is fine.
func DeleteLink(ctx context.Context, name string) error {
	if _, err := os.Stat(filepath.Join("/sys/class/net", name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := run(ctx, "ip", "link", "del", name); err != nil && !strings.Contains(err.Error(), "Cannot find device") {
		return fmt.Errorf("cannot delete link %s: %w", name, err)
	}
	return nil
}

// DeleteNetns deletes a named namespace; one that does not exist is fine.
func DeleteNetns(ctx context.Context, name string) error {
	if _, err := os.Stat(filepath.Join(NetnsDir, name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := run(ctx, "ip", "netns", "del", name); err != nil {
		return fmt.Errorf("cannot delete network namespace %s: %w", name, err)
	}
	return nil
}

// ListNetns returns the names of the named namespaces that start with prefix.
func ListNetns(prefix string) ([]string, error) {
	entries, err := os.ReadDir(NetnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot list %s: %w", NetnsDir, err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// LinkExists reports whether a network interface of that name exists on the host.
func LinkExists(name string) bool {
	_, err := os.Stat(filepath.Join("/sys/class/net", name))
	return err == nil
}

// Exec runs argv inside the named network namespace (only the network namespace: the host's files
// are visible) and returns its combined output.
func Exec(ctx context.Context, netns string, argv ...string) ([]byte, error) {
	args := append([]string{"netns", "exec", netns}, argv...)
	cmd := exec.CommandContext(ctx, "ip", args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("cannot run %q in network namespace %s: %w: %s", strings.Join(argv, " "), netns, err, bytes.TrimSpace(out))
	}
	return out, nil
}

func run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}
