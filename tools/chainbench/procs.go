package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Bounds of the waits on child processes.
const (
	stopTimeout     = 10 * time.Second // after SIGTERM, before SIGKILL
	announceTimeout = 10 * time.Second // for a role's "listening on" line
	commandTimeout  = 30 * time.Second // for a "pki" command
)

// userHZ is the unit of utime and stime in /proc/PID/stat: USER_HZ, 100
// on every Linux architecture that Go runs on.
const userHZ = 100

// proc is a child process of the bench (a daemon, a plain relay, the
// backend) in its own process group, killed with the bench if the bench
// dies first.
type proc struct {
	name string // for messages: "gwproxy", "plain-1", "backend"
	out  string // the file of its standard error (and output, for a daemon)
	log  string // the daemon's log file; "" for the others
	cmd  *exec.Cmd
	done chan struct{} // closed when reaped
	err  error         // how it ended; valid after done
}

func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// startProc starts bin with args in dir, its output to dir/NAME.out.
func startProc(name, dir, bin string, args ...string) (*proc, error) {
	out, err := os.OpenFile(filepath.Join(dir, name+".out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return reaped(name, out.Name(), cmd), nil
}

// startRole starts one of chainbench's roles (self ROLE args...) in dir
// and returns it with the address it announced; its standard error goes
// to dir/NAME.out.
func startRole(ctx context.Context, name, dir, self string, args ...string) (*proc, string, error) {
	errFile, err := os.OpenFile(filepath.Join(dir, name+".out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, "", err
	}
	defer errFile.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return nil, "", err
	}
	defer r.Close()
	cmd := exec.Command(self, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = w, errFile
	cmd.SysProcAttr = sysProcAttr()
	err = cmd.Start()
	w.Close()
	if err != nil {
		return nil, "", fmt.Errorf("start %s: %w", name, err)
	}
	p := reaped(name, errFile.Name(), cmd)
	_ = r.SetReadDeadline(time.Now().Add(announceTimeout))
	line, err := bufio.NewReader(r).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), listeningPrefix)
	if err != nil || !ok {
		p.stop()
		return nil, "", fmt.Errorf("%s did not say where it listens (%q, %v)%s", name, line, err, p.tail())
	}
	if ctx.Err() != nil {
		p.stop()
		return nil, "", ctx.Err()
	}
	return p, addr, nil
}

// reaped starts the goroutine that waits for cmd; p.done is closed then.
func reaped(name, out string, cmd *exec.Cmd) *proc {
	p := &proc{name: name, out: out, cmd: cmd, done: make(chan struct{})}
	go p.reap()
	return p
}

func (p *proc) reap() {
	p.err = p.cmd.Wait()
	close(p.done)
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the process group: SIGTERM, SIGKILL after stopTimeout, and
// waits. It returns how the process ended (nil: status 0, as a daemon
// that stops on SIGTERM exits), or that it had to be killed. Once the
// process was reaped it sends nothing (its pid may be someone else's).
func (p *proc) stop() error {
	if !p.exited() {
		_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(stopTimeout):
			_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
			<-p.done
			return fmt.Errorf("%s ignored SIGTERM for %s and was killed", p.name, stopTimeout)
		}
	}
	if p.err != nil {
		return fmt.Errorf("%s: %w%s", p.name, p.err, p.tail())
	}
	return nil
}

// tail is the end of the process's output and log, for an error message.
func (p *proc) tail() string {
	var b strings.Builder
	for _, f := range []string{p.out, p.log} {
		if f == "" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil || len(bytes.TrimSpace(data)) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		lines = lines[max(0, len(lines)-15):]
		fmt.Fprintf(&b, "\n--- %s (last lines)\n%s", f, strings.Join(lines, "\n"))
	}
	return b.String()
}

// runCommand runs bin with args in dir to its end, within commandTimeout.
func runCommand(ctx context.Context, dir, bin string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return nil
}

// cpuTime is the CPU the process has used so far, user and system, all
// its threads: utime+stime of /proc/PID/stat.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// pid (comm) state ppid ... : utime and stime are fields 14 and 15,
	// the 12th and 13th after the comm, which may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no comm", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(ut+st) * time.Second / userHZ, nil
}

// mem is a process's resident memory, in bytes.
type mem struct {
	RSS, PSS uint64
}

// memory reads Rss and Pss of /proc/PID/smaps_rollup.
func memory(pid int) (mem, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return mem{}, err
	}
	var m mem
	var seen int
	for _, line := range strings.Split(string(b), "\n") {
		key, rest, ok := strings.Cut(line, ":")
		if !ok || (key != "Rss" && key != "Pss") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return mem{}, fmt.Errorf("/proc/%d/smaps_rollup: %q", pid, line)
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return mem{}, fmt.Errorf("/proc/%d/smaps_rollup: %w", pid, err)
		}
		if key == "Rss" {
			m.RSS = kb << 10
		} else {
			m.PSS = kb << 10
		}
		seen++
	}
	if seen != 2 {
		return mem{}, fmt.Errorf("/proc/%d/smaps_rollup: no Rss and Pss", pid)
	}
	return m, nil
}

// fdCount is the number of the process's open descriptors.
func fdCount(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents), err
}
