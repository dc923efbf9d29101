package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaychain/relaychain/e2e/e2etest"
)

// instance is a daemon's instance directory run by scripts/NAME.sh.
type instance struct {
	t      testing.TB
	daemon string
	dir    string
	conf   string
	env    []string
}

// newInstance prepares an instance of daemon in dir (holding
// NAME.yaml), run with the built binaries, and registers a cleanup that
// stops it with the script and kills what is left.
func newInstance(t testing.TB, daemon, dir string, env ...string) *instance {
	t.Helper()
	in := &instance{t: t, daemon: daemon, dir: dir, conf: filepath.Join(dir, daemon+".yaml"),
		env: append([]string{"RELAYCHAIN_BIN=" + e2etest.BinDir(t)}, env...)}
	t.Cleanup(func() {
		in.script("stop")
		for _, pid := range e2etest.ProcessesWith(in.conf) {
			t.Logf("%s: pid %d outlived stop; killing it", in.dir, pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return in
}

// script runs scripts/NAME.sh cmd DIR and returns its output and exit status.
func (in *instance) script(cmd string) (string, int) {
	in.t.Helper()
	c := exec.Command(filepath.Join(e2etest.ModuleRoot(in.t), "scripts", in.daemon+".sh"), cmd, in.dir)
	c.Env = append(os.Environ(), in.env...)
	c.WaitDelay = 5 * time.Second
	out, err := c.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		in.t.Fatalf("%s.sh %s: %v\n%s", in.daemon, cmd, err, out)
	}
	return string(out), code
}

// must runs the script and fails unless it exits with want.
func (in *instance) must(cmd string, want int) string {
	in.t.Helper()
	out, code := in.script(cmd)
	if code != want {
		in.t.Fatalf("%s.sh %s: exit %d, want %d; output:\n%s", in.daemon, cmd, code, want, out)
	}
	return out
}

// pid reads the pid file; 0 when there is none.
func (in *instance) pid() int {
	b, err := os.ReadFile(filepath.Join(in.dir, in.daemon+".pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// running checks that exactly one process runs the instance, the one
// named by the pid file, and returns its pid.
func (in *instance) running() int {
	in.t.Helper()
	pid := in.pid()
	if pid == 0 || !e2etest.Alive(pid) {
		in.t.Fatalf("%s: pid file names %d, not a live process", in.dir, pid)
	}
	if procs := e2etest.ProcessesWith(in.conf); !slices.Equal(procs, []int{pid}) {
		in.t.Fatalf("%s: processes running %s: %v, want only the pid file's %d", in.dir, in.conf, procs, pid)
	}
	return pid
}

// gone waits until pid has exited.
func (in *instance) gone(pid int) {
	in.t.Helper()
	e2etest.Eventually(in.t, 10*time.Second, fmt.Sprintf("pid %d gone", pid), func() error {
		if e2etest.Alive(pid) {
			return fmt.Errorf("pid %d is alive", pid)
		}
		return nil
	})
	if procs := e2etest.ProcessesWith(in.conf); len(procs) > 0 {
		in.t.Fatalf("%s: processes still running %s: %v", in.dir, in.conf, procs)
	}
}

// TestScripts drives scripts/NAME.sh start|status|stop|restart|reload in
// instance directories made from the example chain, with RELAYCHAIN_BIN
// pointing at the built binaries.
func TestScripts(t *testing.T) {
	example := e2etest.NewChain(t, e2etest.Options{}).Dir

	t.Run("relay lifecycle", func(t *testing.T) {
		t.Parallel()
		in := newInstance(t, "relay", filepath.Join(example, "relay-dmz2"))
		if out := in.must("status", 3); !strings.Contains(out, "not running") {
			t.Fatalf("status before start: %q", out)
		}
		in.must("start", 0)
		pid := in.running()
		if out := in.must("status", 0); !strings.Contains(out, "running") || !strings.Contains(out, strconv.Itoa(pid)) {
			t.Fatalf("status: %q", out)
		}
		// Once its admin socket answers, status adds the node's summary:
		// its links, here all down (no neighbour runs).
		e2etest.Eventually(t, 10*time.Second, "the node's summary in status", func() error {
			out := in.must("status", 0)
			for _, want := range []string{"relay-dmz2 (relay)", "relay-dmz1", "gwp-site-a", "never up"} {
				if !strings.Contains(out, want) {
					return fmt.Errorf("no %q in %q", want, out)
				}
			}
			return nil
		})

		// A second start leaves the running process alone.
		if out := in.must("start", 0); !strings.Contains(out, "already running") {
			t.Fatalf("second start: %q", out)
		}
		if again := in.running(); again != pid {
			t.Fatalf("second start: pid %d, was %d", again, pid)
		}

		// reload: the daemon reloads its configuration (SIGHUP).
		in.must("reload", 0)
		e2etest.WaitLogFile(t, filepath.Join(in.dir, "relay.log"), 0, 10*time.Second,
			`log: level stays 3 \[by=SIGHUP\]`)
		if in.running() != pid {
			t.Fatal("reload changed the process")
		}

		// restart: a new process, the old one gone.
		in.must("restart", 0)
		newPID := in.running()
		if newPID == pid {
			t.Fatalf("restart kept pid %d", pid)
		}
		if e2etest.Alive(pid) {
			t.Fatalf("restart left the old pid %d running", pid)
		}

		// stop waits until the process is gone.
		in.must("stop", 0)
		if e2etest.Alive(newPID) {
			t.Fatalf("stop returned with pid %d still running", newPID)
		}
		in.gone(newPID)
		if _, err := os.Stat(filepath.Join(in.dir, "relay.pid")); !os.IsNotExist(err) {
			t.Fatalf("stop left the pid file: %v", err)
		}
		in.must("status", 3)
		in.must("stop", 0) // stopping a stopped instance succeeds
		in.must("reload", 7)
		// The daemon's own log shows a clean stop.
		e2etest.WaitLogFile(t, filepath.Join(in.dir, "relay.log"), 0, 5*time.Second, `main: stopped`)
	})

	for _, n := range []e2etest.Node{{Name: "epp-main", Daemon: "epproxy"}, {Name: "gwp-site-a", Daemon: "gwproxy"}} {
		t.Run(n.Daemon, func(t *testing.T) {
			t.Parallel()
			in := newInstance(t, n.Daemon, filepath.Join(example, n.Name))
			in.must("status", 3)
			in.must("start", 0)
			pid := in.running()
			in.must("status", 0)
			in.must("check", 0)
			in.must("stop", 0)
			in.gone(pid)
			in.must("status", 3)
		})
	}

	t.Run("stop escalates to SIGKILL", func(t *testing.T) {
		t.Parallel()
		// A fake relay (this test binary, see TestMain) that ignores SIGTERM.
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		fakeBin := t.TempDir()
		if err := os.Symlink(self, filepath.Join(fakeBin, "relay")); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "relay.yaml"), []byte("label: fake\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		in := newInstance(t, "relay", dir, fakeDaemonEnv+"=1", "STOP_TIMEOUT=1")
		in.env = append(in.env, "RELAYCHAIN_BIN="+fakeBin) // the later one wins
		in.must("start", 0)
		pid := in.running()
		out := in.must("stop", 0)
		if !strings.Contains(out, "sending SIGKILL") {
			t.Fatalf("stop did not escalate: %q", out)
		}
		in.gone(pid)
	})
}
