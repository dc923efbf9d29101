package e2etest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Daemons are the daemons Bin builds; tools/chaindemo is built beside them.
var Daemons = []string{"epproxy", "gwproxy", "relay", "eventsink"}

// The version stamped into the binaries Bin builds (with -ldflags -X), as
// NAME -v shows it.
const (
	Version = "e2e-test"
	Commit  = "e2ecommit"
	Date    = "2026-01-02T03:04:05Z"
)

// versionPkg holds the variables the stamp sets. It is only named here,
// for the linker: the harness imports nothing from the module.
const versionPkg = "github.com/relaychain/relaychain/internal/version"

var (
	mainCalled bool

	buildOnce sync.Once
	buildRoot string // temporary directory of the build, removed by Main
	buildDir  string // buildRoot/bin once built
	buildSkip string // why the tests cannot run, when set
	buildErr  error
)

// Main runs the tests of m and then removes the binaries Bin built. Call
// it from TestMain; the testing package exits with m's result:
//
//	func TestMain(m *testing.M) { e2etest.Main(m) }
func Main(m *testing.M) {
	mainCalled = true
	m.Run()
	if buildRoot != "" {
		_ = os.RemoveAll(buildRoot)
	}
}

// ModuleRoot is the directory of go.mod, found from the working directory
// up (a test runs in its package's directory).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatal("module root not found: no go.mod above the working directory")
		}
		dir = up
	}
}

// BinDir builds the daemons and tools/chaindemo once per test binary, with
// the version stamped in, and returns the directory that holds them. The
// binaries are plain builds even when the tests run with -race: the race
// detector watches the tests' own clients and servers. BinDir skips the
// test with -short, or when the go tool is not available.
func BinDir(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e: builds and runs the real daemons; skipped with -short")
	}
	if !mainCalled {
		t.Fatal("e2etest: TestMain must call e2etest.Main (it removes the built binaries)")
	}
	root := ModuleRoot(t)
	buildOnce.Do(func() { build(t, root) })
	if buildSkip != "" {
		t.Skip(buildSkip)
	}
	if buildErr != nil {
		t.Fatalf("building the daemons: %v", buildErr)
	}
	return buildDir
}

// Bin is the path of the built binary name (a daemon or "chaindemo").
func Bin(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join(BinDir(t), name)
}

func build(t testing.TB, root string) {
	// go test puts its own GOROOT/bin first on the PATH.
	goTool, err := exec.LookPath("go")
	if err != nil {
		buildSkip = "e2e: the go tool is not available to build the daemons: " + err.Error()
		return
	}
	buildRoot, err = os.MkdirTemp("", "relaychain-e2e-")
	if err != nil {
		buildErr = err
		return
	}
	out := filepath.Join(buildRoot, "bin")
	if err := os.MkdirAll(out, 0o755); err != nil {
		buildErr = err
		return
	}
	ldflags := strings.Join([]string{
		"-X", versionPkg + ".Version=" + Version,
		"-X", versionPkg + ".Commit=" + Commit,
		"-X", versionPkg + ".Date=" + Date,
	}, " ")
	var pkgs []string
	for _, d := range Daemons {
		pkgs = append(pkgs, "./"+d)
	}
	pkgs = append(pkgs, "./tools/chaindemo")
	args := append([]string{"build", "-trimpath", "-ldflags", ldflags, "-o", out + string(filepath.Separator)}, pkgs...)
	cmd := exec.Command(goTool, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	start := time.Now()
	if b, err := cmd.CombinedOutput(); err != nil {
		buildErr = fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, b)
		return
	}
	t.Logf("built %s in %s", strings.Join(pkgs, " "), time.Since(start).Round(time.Millisecond))
	buildDir = out
}
