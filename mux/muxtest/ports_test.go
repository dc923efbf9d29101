package muxtest

import (
	"net"
	"runtime"
	"strconv"
	"testing"
)

// TestFreePort checks that FreePort hands out distinct ports outside the
// ephemeral range, free for TCP and UDP, and reserved against other test
// binaries.
func TestFreePort(t *testing.T) {
	lo, hi := ephemeralRange()
	seen := map[int]bool{}
	for range 50 {
		p := FreePort(t)
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		if p < lowestPort || (p >= lo && p <= hi) || p > 65535 {
			t.Fatalf("port %d: want %d..%d or %d..65535", p, lowestPort, lo-1, hi+1)
		}
		addr := "127.0.0.1:" + strconv.Itoa(p)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("port %d not free for TCP: %v", p, err)
		}
		ln.Close()
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatalf("port %d not free for UDP: %v", p, err)
		}
		pc.Close()
		if runtime.GOOS == "linux" && reserve(p) {
			t.Fatalf("port %d could be reserved a second time", p)
		}
	}
}
