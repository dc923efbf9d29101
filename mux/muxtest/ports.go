package muxtest

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

var (
	portMu   sync.Mutex
	portUsed = map[int]bool{}
)

// lowestPort is where FreePort starts: above the example's fixed ports
// (17101..19812), so that a demo running beside the tests does not collide.
const lowestPort = 20000

// FreePort returns a loopback port that is free for TCP and UDP now and
// that no FreePort has handed out before, in this test binary or in
// another one running at the same time (go test runs the packages of
// ./e2e/... at once). It picks outside the kernel's ephemeral range, so
// that no outgoing connection or ":0" listener of anyone can take the port
// before the daemon binds it.
func FreePort(t testing.TB) int {
	t.Helper()
	ephLo, ephHi := ephemeralRange()
	below := max(ephLo-lowestPort, 0) // ports lowestPort..ephLo-1
	above := max(65535-ephHi, 0)      // ports ephHi+1..65535
	if below+above == 0 {
		t.Fatal("no free port: the ephemeral range covers every port from 20000 up")
	}
	portMu.Lock()
	defer portMu.Unlock()
	for range 2000 {
		p := lowestPort + rand.IntN(below+above)
		if p >= ephLo {
			p = ephHi + 1 + (p - lowestPort - below)
		}
		if portUsed[p] || !free(p) || !reserve(p) {
			continue
		}
		portUsed[p] = true
		return p
	}
	t.Fatal("no free port found")
	return 0
}

// free reports whether port p can be bound on 127.0.0.1 for TCP and UDP.
func free(p int) bool {
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

// ephemeralRange is the kernel's range of ports for outgoing connections
// and ":0" listeners, or Linux's default when it cannot be read.
func ephemeralRange() (lo, hi int) {
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
