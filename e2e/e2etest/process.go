package e2etest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stopTimeout is how long Stop waits after SIGTERM before SIGKILL.
const stopTimeout = 10 * time.Second

// Process is a child process of the test, a daemon or a helper like
// chaindemo, in its own process group.
type Process struct {
	Name   string // for messages: the node's name, say
	Daemon string // the daemon's name; empty for other programs
	Dir    string // its working directory
	Conf   string // the daemon's configuration file
	Log    string // the daemon's log file
	Out    string // the file that gets its standard output and error

	cmd    *exec.Cmd
	done   chan struct{} // closed when the process was reaped
	err    error         // valid after done
	exitAt time.Time     // valid after done
}

// StartDaemon starts the built daemon with --config dir/DAEMON.yaml (and
// args) in dir, as StartProcess does. Its log is dir/DAEMON.log, the log
// file every configuration of configs/example names.
func StartDaemon(t testing.TB, name, daemon, dir string, args ...string) *Process {
	t.Helper()
	conf := filepath.Join(dir, daemon+".yaml")
	p := StartProcess(t, name, dir, Bin(t, daemon), append([]string{"--config", conf}, args...)...)
	p.Daemon, p.Conf, p.Log = daemon, conf, filepath.Join(dir, daemon+".log")
	return p
}

// StartProcess starts bin with args in dir as a child process in its own
// process group, with its output appended to dir/NAME.out, and registers a
// cleanup that stops it (see Stop).
func StartProcess(t testing.TB, name, dir, bin string, args ...string) *Process {
	t.Helper()
	outPath := filepath.Join(dir, name+".out")
	out, err := os.OpenFile(outPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &Process{Name: name, Dir: dir, Out: outPath, cmd: cmd, done: make(chan struct{})}
	go p.reap()
	t.Cleanup(func() { p.Stop(t) })
	return p
}

// reap waits for the process and records how it ended.
func (p *Process) reap() {
	p.err = p.cmd.Wait()
	p.exitAt = time.Now()
	close(p.done)
}

// Pid is the process id, which is also its process group id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has exited (and was reaped).
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is how the process ended (nil: exit status 0); valid once Exited.
func (p *Process) Err() error { return p.err }

// ExitedAt is when the process was reaped; valid once Exited.
func (p *Process) ExitedAt() time.Time { return p.exitAt }

// Signal sends sig to the process (not to its group).
func (p *Process) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(p.Pid(), sig); err != nil {
		t.Fatalf("%s: send %v: %v", p.Name, sig, err)
	}
}

// Wait waits at most d for the process to exit and returns how it ended;
// it fails the test after d.
func (p *Process) Wait(t testing.TB, d time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		t.Fatalf("%s (pid %d) still running after %s", p.Name, p.Pid(), d)
		return nil
	}
}

// Kill sends SIGKILL to the process group and waits for the process.
func (p *Process) Kill(t testing.TB) {
	t.Helper()
	if !p.Exited() {
		_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
	}
	p.Wait(t, stopTimeout)
}

// Terminate sends SIGTERM and checks that the process exits with status 0
// within d.
func (p *Process) Terminate(t testing.TB, d time.Duration) {
	t.Helper()
	p.Signal(t, syscall.SIGTERM)
	if err := p.Wait(t, d); err != nil {
		t.Errorf("%s did not exit cleanly after SIGTERM: %v\noutput:\n%s\nlog:\n%s", p.Name, err, FileText(p.Out), Tail(p.Log, 20))
	}
}

// CheckRunning fails the test if the process has exited.
func (p *Process) CheckRunning(t testing.TB) {
	t.Helper()
	if p.Exited() {
		t.Fatalf("%s exited: %v\noutput:\n%s\nlog:\n%s", p.Name, p.err, FileText(p.Out), Tail(p.Log, 30))
	}
}

// Stop ends the process group: SIGTERM, then SIGKILL after 10s, and waits.
// It does nothing once the process was reaped (its pid and group id may
// then belong to someone else). It is every process's cleanup.
func (p *Process) Stop(t testing.TB) {
	if p.Exited() {
		return
	}
	pgid := p.Pid() // the process leads its own group
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		t.Logf("%s (pid %d) ignored SIGTERM for %s; killing it", p.Name, pgid, stopTimeout)
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
}

// ProcessesWith returns the pids of the processes whose command line holds
// the argument arg, in order.
func ProcessesWith(arg string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, a := range bytes.Split(b, []byte{0}) {
			if string(a) == arg {
				pids = append(pids, pid)
				break
			}
		}
	}
	sort.Ints(pids)
	return pids
}

// Alive reports whether pid names a process that has not exited (a zombie
// counts as exited).
func Alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) STATE ...
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}
