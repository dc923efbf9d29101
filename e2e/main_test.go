// Package e2e holds the end-to-end tests of the relay chain: they build the
// real daemons once, start each of them as its own process from the
// example configurations (configs/example) on free loopback ports, and
// drive sessions through the chain from in-test clients to in-test target
// servers.
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
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The daemons under test, built once per test binary.
var daemons = []string{"epproxy", "gwproxy", "relay"}

// Stamped into the binaries with -ldflags -X.
const (
	stampVersion = "e2e-test"
	stampCommit  = "e2ecommit"
	stampDate    = "2026-01-02T03:04:05Z"
	versionPkg   = "github.com/relaychain/relaychain/internal/version"
)

// fakeDaemonEnv turns the test binary into a fake daemon that ignores
// SIGTERM (for the script's SIGKILL escalation); see TestMain.
const fakeDaemonEnv = "RELAYCHAIN_E2E_FAKE_DAEMON"

var (
	buildRoot string // temporary directory of the built binaries

	buildOnce sync.Once
	buildDir  string // buildRoot/bin once built
	buildSkip string // why the tests cannot run, when set
	buildErr  error
)

func TestMain(m *testing.M) {
	if os.Getenv(fakeDaemonEnv) != "" {
		fakeDaemon()
		return
	}
	dir, err := os.MkdirTemp("", "relaychain-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	buildRoot = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
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

// moduleRoot is the directory of go.mod: the parent of this package.
func moduleRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found: %v", err)
	}
	return root
}

// binaries builds the daemons (and tools/chaindemo) once, with the version
// stamped in, and returns the directory that holds them. It skips the test
// when the go tool is not available.
func binaries(t testing.TB) string {
	t.Helper()
	root := moduleRoot(t)
	if testing.Short() {
		t.Skip("e2e: builds and runs the real daemons; skipped with -short")
	}
	buildOnce.Do(func() {
		// go test puts its own GOROOT/bin first on the PATH.
		goTool, err := exec.LookPath("go")
		if err != nil {
			buildSkip = "e2e: the go tool is not available to build the daemons: " + err.Error()
			return
		}
		out := filepath.Join(buildRoot, "bin")
		if err := os.MkdirAll(out, 0o755); err != nil {
			buildErr = err
			return
		}
		ldflags := strings.Join([]string{
			"-X", versionPkg + ".Version=" + stampVersion,
			"-X", versionPkg + ".Commit=" + stampCommit,
			"-X", versionPkg + ".Date=" + stampDate,
		}, " ")
		pkgs := []string{"./epproxy", "./gwproxy", "./relay", "./tools/chaindemo"}
		if _, err := os.Stat(filepath.Join(root, "eventsink", "main.go")); err == nil {
			pkgs = append(pkgs, "./eventsink")
		}
		args := append([]string{"build", "-trimpath", "-ldflags", ldflags, "-o", out + string(filepath.Separator)}, pkgs...)
		cmd := exec.Command(goTool, args...)
		cmd.Dir = root
		// The binaries are plain builds even when the tests run with -race.
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

// binPath is the path of the built binary name.
func binPath(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join(binaries(t), name)
}
