package e2etest

import (
	"testing"

	"github.com/relaychain/relaychain/mux/muxtest"
)

// FreePort returns a loopback port that is free for TCP and UDP now, that
// no test binary running at the same time was given, outside the kernel's
// ephemeral range: muxtest.FreePort.
func FreePort(t testing.TB) int { return muxtest.FreePort(t) }
