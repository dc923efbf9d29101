package mux_test

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// TestMain runs the package's one test binary, which holds both the
// black-box tests (package mux_test) and the white-box ones (package mux).
// It hands the white-box tests muxtest's logger and tuning, and fails the
// run when any goroutine is left once every test has run. No goroutine is
// ignored: the package starts no global one, and one of ours left behind is
// a bug to fix, not to hide.
func TestMain(m *testing.M) {
	// Make the runtime open its network poller descriptors now, so that
	// they are part of the first test's descriptor baseline.
	if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		_ = ln.Close()
	}
	mux.SetTestKit(muxtest.Log, muxtest.FastTuning)
	goleak.VerifyTestMain(m)
}

// checkReleased makes the test fail unless, once every other cleanup of
// the test ran (node shutdowns, servers closed), no goroutine started
// during the test is still running and the process holds no more sockets
// than when the test started. Call it first in a test, so that its cleanup
// runs last. Tests that use it must not be parallel.
func checkReleased(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	base := openSockets()
	t.Cleanup(func() {
		var err error
		deadline := time.Now().Add(10 * time.Second)
		for {
			if err = goleak.Find(ignore); err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			t.Errorf("goroutines left after the test: %v", err)
		}
		if base < 0 {
			return
		}
		// A socket is released when its goroutine closes it; poll
		// briefly. No slack: every socket of the test must be closed.
		n := openSockets()
		for n > base && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
			n = openSockets()
		}
		if n > base {
			t.Errorf("sockets: %d open after the test, %d before\n%s", n, base, listFDs())
		}
	})
}

// openSockets counts the process's open socket descriptors, or returns -1
// where /proc/self/fd does not exist (not Linux). Other descriptors are
// not counted: the runtime keeps pipes for splice(2) in a pool that only
// the garbage collector empties.
func openSockets() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(target, "socket:") {
			n++
		}
	}
	// The port reservations of muxtest.FreePort are held on purpose.
	return n - muxtest.Reservations()
}

// listFDs describes the open descriptors, for a failure message.
func listFDs() string {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, e := range ents {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		b.WriteString(e.Name() + " -> " + target + "\n")
	}
	return b.String()
}
