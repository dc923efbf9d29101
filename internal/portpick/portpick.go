// Package portpick picks loopback ports for the tests and the benchmark
// that start daemons on fixed ports: free for TCP and UDP now, outside the
// kernel's ephemeral range (no outgoing connection or ":0" listener can
// take one before the daemon binds it), never handed out twice by this
// process, and reserved against other processes that follow the same
// convention (an abstract Unix socket per port, held for the life of the
// process; Linux only).
package portpick

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Lowest is where the picks start: above the example chain's fixed ports
// (17101..19812), so that a demo running beside the tests does not
// collide.
const Lowest = 20000

var (
	mu       sync.Mutex
	used     = map[int]bool{}
	reserved []net.Listener
)

// One returns a port.
func One() (int, error) {
	ephLo, ephHi := EphemeralRange()
	below := max(ephLo-Lowest, 0) // ports Lowest..ephLo-1
	above := max(65535-ephHi, 0)  // ports ephHi+1..65535
	if below+above == 0 {
		return 0, errors.New("no free port: the ephemeral range covers every port from 20000 up")
	}
	mu.Lock()
	defer mu.Unlock()
	for range 2000 {
		p := Lowest + rand.IntN(below+above)
		if p >= ephLo {
			p = ephHi + 1 + (p - Lowest - below)
		}
		if used[p] || !Free(p) || !reserve(p) {
			continue
		}
		used[p] = true
		return p, nil
	}
	return 0, errors.New("no free port found")
}

// Range returns the first of n consecutive ports (n at most 1000), each
// picked as One picks one.
func Range(n int) (int, error) {
	if n < 1 || n > 1000 {
		return 0, fmt.Errorf("a range of %d ports: want 1 to 1000", n)
	}
	ephLo, ephHi := EphemeralRange()
	mu.Lock()
	defer mu.Unlock()
	ok := func(p int) bool {
		inBand := p >= Lowest && p < ephLo || p > ephHi && p <= 65535
		return inBand && !used[p] && Free(p)
	}
	for range 2000 {
		var lo int
		if ephLo-n > Lowest && (rand.IntN(2) == 0 || 65535-ephHi <= n) {
			lo = Lowest + rand.IntN(ephLo-n-Lowest)
		} else if 65535-ephHi > n {
			lo = ephHi + 1 + rand.IntN(65535-ephHi-n)
		} else {
			break
		}
		all := true
		for p := lo; p < lo+n && all; p++ {
			all = ok(p)
		}
		if !all {
			continue
		}
		for p := lo; p < lo+n && all; p++ {
			all = reserve(p)
			used[p] = true
		}
		if all {
			return lo, nil
		}
	}
	return 0, fmt.Errorf("no %d free consecutive ports found", n)
}

// Free reports whether port p can be bound on 127.0.0.1 for TCP and UDP.
func Free(p int) bool {
	addr := "127.0.0.1:" + strconv.Itoa(p)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	_ = pc.Close()
	return true
}

// reserve claims p among the processes that follow the convention: the
// abstract Unix socket @relaychain-test-port-P, which one process at a
// time can hold, and which goes away with it. Elsewhere than on Linux it
// claims nothing. The caller holds mu.
func reserve(p int) bool {
	if !abstractSockets {
		return true
	}
	ln, err := net.Listen("unix", "@relaychain-test-port-"+strconv.Itoa(p))
	if err != nil {
		return false
	}
	reserved = append(reserved, ln)
	return true
}

// Reservations is how many port reservations this process holds (each an
// open socket, for tests that count sockets).
func Reservations() int {
	mu.Lock()
	defer mu.Unlock()
	return len(reserved)
}

// EphemeralRange is the kernel's range of ports for outgoing connections
// and ":0" listeners, or Linux's default when it cannot be read.
func EphemeralRange() (lo, hi int) {
	lo, hi = 32768, 60999
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return lo, hi
	}
	l, err1 := strconv.Atoi(f[0])
	h, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || l > h {
		return lo, hi
	}
	return l, h
}
