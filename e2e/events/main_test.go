// Package eventse2e is the end-to-end test of the event path: log adapters
// and syslog senders → eventsink (spool) → gwproxy → relays → epproxy →
// event server, with the real daemons built once from this module, each
// run as its own process from configs/example rewritten to free loopback
// ports, and an in-test event server that records every line.
//
// It checks that events are neither lost nor repeated while the event
// server, a relay, the eventsink and the epproxy are stopped or killed in
// turn (TestEventsSurviveFaults), that garbage sent to the eventsink does
// not stop it (TestGarbageInput), and measures events per second end to
// end (BenchmarkEventsEndToEnd, scripts/bench-events.sh).
//
// Typical usage:
//
//	go test -count=1 -v ./e2e/events/
//	go test -race -count=1 ./e2e/events/
//	go test -run '^$' -bench . -benchtime 100000x ./e2e/events/
//
// It lives apart from package e2e (its own helpers, its own port range)
// so that both can run at the same time.
package eventse2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildRoot string // temporary directory of the built binaries

	buildOnce sync.Once
	buildDir  string
	buildSkip string
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "relaychain-events-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "events e2e:", err)
		os.Exit(1)
	}
	buildRoot = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// raceEnabled reports whether this test binary was built with -race.
var raceEnabled = func() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}()

// moduleRoot is the directory of go.mod, two levels up.
func moduleRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found: %v", err)
	}
	return root
}

// binaries builds the four daemons once and returns their directory. The
// binaries are plain builds even when the tests run with -race: the race
// detector watches the test's own senders and event server.
func binaries(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("events e2e: builds and runs the real daemons; skipped with -short")
	}
	root := moduleRoot(t)
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			buildSkip = "events e2e: the go tool is not available: " + err.Error()
			return
		}
		out := filepath.Join(buildRoot, "bin")
		pkgs := []string{"./epproxy", "./gwproxy", "./relay", "./eventsink"}
		args := append([]string{"build", "-trimpath", "-o", out + string(filepath.Separator)}, pkgs...)
		cmd := exec.Command(goTool, args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
		start := time.Now()
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, b)
			return
		}
		t.Logf("built %s in %s", strings.Join(pkgs, " "), time.Since(start).Round(time.Millisecond))
		buildDir = out
	})
	if buildSkip != "" {
		t.Skip(buildSkip)
	}
	if buildErr != nil {
		t.Fatalf("building the daemons: %v", buildErr)
	}
	return buildDir
}
