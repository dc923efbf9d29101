// Package e2e holds the end-to-end tests of the relay chain: they build the
// real daemons once, start each of them as its own process from the
// example configurations (configs/example) on free loopback ports, and
// drive sessions through the chain from in-test clients to in-test target
// servers. The harness (building, starting, log lines, sockets) is
// package e2etest; the clients and targets are here.
//
// Typical usage:
//
//	go test -race -count=1 ./e2e/
//	go test -count=1 -run 'TestKill' -v ./e2e/
//
// The tests skip when the go tool is not available (they build the
// daemons with it).
package e2e

import (
	"fmt"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/relaychain/relaychain/e2e/e2etest"
)

// fakeDaemonEnv turns the test binary into a fake daemon that ignores
// SIGTERM (for the script's SIGKILL escalation); see TestMain.
const fakeDaemonEnv = "RELAYCHAIN_E2E_FAKE_DAEMON"

func TestMain(m *testing.M) {
	if os.Getenv(fakeDaemonEnv) != "" {
		fakeDaemon()
		return
	}
	e2etest.Main(m)
}

// fakeDaemon plays a daemon that ignores SIGTERM: "check" succeeds, anything
// else runs until killed. Used through a symlink named after the daemon,
// so that the scripts take it for one.
func fakeDaemon() {
	if slices.Contains(os.Args[1:], "check") {
		fmt.Println("configuration OK")
		os.Exit(0)
	}
	signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	for {
		time.Sleep(time.Hour)
	}
}
