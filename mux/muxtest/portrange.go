package muxtest

import (
	"math/rand/v2"
	"testing"
)

// FreePortRange returns the first of n consecutive loopback ports, each
// free and handed out as FreePort hands out one (n at most 1000).
func FreePortRange(t testing.TB, n int) int {
	t.Helper()
	if n < 1 || n > 1000 {
		t.Fatalf("FreePortRange(%d): want 1 to 1000 ports", n)
	}
	ephLo, ephHi := ephemeralRange()
	portMu.Lock()
	defer portMu.Unlock()
	ok := func(p int) bool {
		inBand := p >= lowestPort && p < ephLo || p > ephHi && p <= 65535
		return inBand && !portUsed[p] && free(p)
	}
	for range 2000 {
		var lo int
		if ephLo-n > lowestPort && (rand.IntN(2) == 0 || 65535-ephHi <= n) {
			lo = lowestPort + rand.IntN(ephLo-n-lowestPort)
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
			portUsed[p] = true
		}
		if all {
			return lo
		}
	}
	t.Fatalf("no %d free consecutive ports found", n)
	return 0
}
