package portpick

import (
	"net"
	"runtime"
	"strconv"
	"testing"
)

// TestOne checks that One hands out distinct ports outside the ephemeral
// range, free for TCP and UDP, and reserved against other processes.
func TestOne(t *testing.T) {
	lo, hi := EphemeralRange()
	seen := map[int]bool{}
	for range 50 {
		p, err := One()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		if p < Lowest || (p >= lo && p <= hi) || p > 65535 {
			t.Fatalf("port %d: want %d..%d or %d..65535", p, Lowest, lo-1, hi+1)
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
		mu.Lock()
		again := reserve(p)
		mu.Unlock()
		if runtime.GOOS == "linux" && again {
			t.Fatalf("port %d could be reserved a second time", p)
		}
	}
}

// TestRange: n consecutive ports, each free, none handed out again.
func TestRange(t *testing.T) {
	lo, err := Range(20)
	if err != nil {
		t.Fatal(err)
	}
	for p := lo; p < lo+20; p++ {
		if !used[p] {
			t.Fatalf("port %d of the range is not marked handed out", p)
		}
		if !Free(p) {
			t.Fatalf("port %d of the range is not free", p)
		}
	}
	if _, err := Range(0); err == nil {
		t.Error("a range of 0 ports")
	}
}
