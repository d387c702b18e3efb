// Package loopback picks 127.a.b.0/24 addresses and a port free on all of them, so a benchmark cluster
// gives each member its own loopback address, as nodeproc does for node processes.
package loopback

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strconv"
)

// Net is a 127.a.b.0/24 network with ports free on its first Size addresses.
type Net struct {
	Prefix string
	Ports  []int
}

// IP is the address of member i (0-based): 127.a.b.(i+1).
func (n Net) IP(i int) string { return fmt.Sprintf("%s.%d", n.Prefix, i+1) }

// Addr is member i's address on port number p (an index into Ports).
func (n Net) Addr(i, p int) string { return net.JoinHostPort(n.IP(i), strconv.Itoa(n.Ports[p])) }

// Pick chooses a random 127.a.b.0/24 and ports ports free on its first size addresses.
func Pick(size, ports int) (Net, error) {
	for attempt := 0; attempt < 50; attempt++ {
		a, _ := rand.Int(rand.Reader, big.NewInt(200))
		b, _ := rand.Int(rand.Reader, big.NewInt(250))
		p, _ := rand.Int(rand.Reader, big.NewInt(20000))
		n := Net{Prefix: fmt.Sprintf("127.%d.%d", a.Int64()+20, b.Int64()+1)}
		base := 21000 + int(p.Int64())
		ok := true
		for k := 0; k < ports && ok; k++ {
			port := base + k*7
			for i := 0; i < size && ok; i++ {
				ln, err := net.Listen("tcp", net.JoinHostPort(n.IP(i), strconv.Itoa(port)))
				if err != nil {
					ok = false
					break
				}
				_ = ln.Close()
			}
			n.Ports = append(n.Ports, port)
		}
		if ok {
			return n, nil
		}
	}
	return Net{}, errors.New("cannot find free loopback addresses")
}
