package muxtest

import (
	"testing"

	"github.com/relaychain/relaychain/internal/portpick"
)

// FreePort returns a loopback port that is free for TCP and UDP now and
// that no FreePort has handed out before, in this test binary or in
// another one running at the same time (go test runs the packages of
// ./e2e/... at once). It picks outside the kernel's ephemeral range, so
// that no outgoing connection or ":0" listener of anyone can take the port
// before the daemon binds it (package portpick).
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := portpick.One()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// FreePortRange returns the first of n consecutive loopback ports, each
// free and handed out as FreePort hands out one (n at most 1000).
func FreePortRange(t testing.TB, n int) int {
	t.Helper()
	p, err := portpick.Range(n)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Reservations is how many port reservations this process holds (each an
// open socket, for tests that count sockets).
func Reservations() int { return portpick.Reservations() }
