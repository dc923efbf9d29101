package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The nodes of configs/example: instance directory and daemon.
type nodeSpec struct{ name, daemon string }

// In start order: listeners first, so that the dialling sides find them
// at once (the order does not matter for correctness, only for speed).
var exampleNodes = []nodeSpec{
	{"relay-dmz2", "relay"},
	{"relay-dmz1", "relay"},
	{"gwp-site-a", "gwproxy"},
	{"gwp-site-b", "gwproxy"},
	{"epp-main", "epproxy"},
}

// The addresses of configs/example, by role (see its README.md).
const (
	portGateway   = 19494 // the gateway: epp-main's service "gateway"
	portEndpointA = 19701 // an endpoint of site A: gwp-site-a's service "endpoint"
	portEndpointB = 19702
	portDownA     = 19501 // epp-main's downcall entries
	portDownB     = 19502
	portUpA       = 19601 // gwp-site-a's upcall entry
	portUpB       = 19602
	portDMZ1      = 17101 // relay-dmz1's parent link
	portDMZ2      = 17102 // relay-dmz2's parent link
	portDMZ2Out   = 17103 // relay-dmz2's children (the gwproxies)
)

// fastTuning makes faults visible quickly; it is appended to every
// configuration of a test chain (the example files have no tuning section).
//
// write_timeout also bounds a keepalive's round trip, and yamux queues the
// ping's answer behind the data frames already waiting on the link (up to
// 64 frames of 64KiB, see configs/relay.yaml) and the loopback socket
// buffers: more than 10MB when the tests stream flat out both ways. On a
// loaded 2-core machine running -race test binaries beside the daemons,
// that can take over a second to drain, and a 1s write_timeout then
// killed healthy links (keepalive failed: i/o deadline reached) in the
// middle of TestKillRelay's streaming sessions. 5s leaves room for that
// and still notices a frozen peer within a few seconds.
const fastTuning = `
# Added by the e2e tests: faults noticed fast, links back fast.
tuning:
  keepalive_interval: 500ms
  write_timeout: 5s
  hello_timeout: 2s
  reconnect_min: 50ms
  reconnect_max: 500ms
`

const (
	keepaliveInterval = 500 * time.Millisecond
	writeTimeout      = 5 * time.Second
)

var (
	portMu   sync.Mutex
	portUsed = map[int]bool{}
)

// freePort returns a loopback port that is free now and that this test
// binary has not handed out before. It picks below the kernel's ephemeral
// range, so that no outgoing connection or ":0" listener of anyone can
// take the port before the daemon binds it; and above the example's fixed
// ports (17101..19800), so that a demo running beside the tests does not
// collide either.
func freePort(t testing.TB) int {
	t.Helper()
	lo, hi := 20000, ephemeralLow()
	for range 1000 {
		p := 0
		if hi-lo >= 1000 {
			p = lo + rand.IntN(hi-lo)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue // in use
		}
		p = ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		portMu.Lock()
		used := portUsed[p]
		portUsed[p] = true
		portMu.Unlock()
		if !used {
			return p
		}
	}
	t.Fatal("no free port found")
	return 0
}

// ephemeralLow is the first port of the kernel's ephemeral range, or 0.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}

var reAddr = regexp.MustCompile(`127\.0\.0\.1:(\d+)`)

// copyExample copies configs/example/* into a new temporary directory and
// rewrites every 127.0.0.1:PORT in the YAML files: to fixed[PORT] when
// given (the in-test targets), else to a fresh free port, the same one for
// the same PORT in every file, so that the links still match. edit, when
// not nil, may change each file's text further. It returns the directory
// and the port mapping.
func copyExample(t testing.TB, fixed map[int]int, edit func(node, text string) string) (string, map[int]int) {
	t.Helper()
	src := filepath.Join(moduleRoot(t), "configs", "example")
	dst := t.TempDir()
	ports := map[int]int{}
	for k, v := range fixed {
		ports[k] = v
	}
	mapPort := func(m string) string {
		p, _ := strconv.Atoi(reAddr.FindStringSubmatch(m)[1])
		np, ok := ports[p]
		if !ok {
			np = freePort(t)
			ports[p] = np
		}
		return "127.0.0.1:" + strconv.Itoa(np)
	}
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, ".yaml") {
			text := reAddr.ReplaceAllStringFunc(string(b), mapPort)
			if edit != nil {
				text = edit(filepath.Dir(rel), text)
			}
			b = []byte(text)
		}
		return os.WriteFile(out, b, 0o644)
	})
	if err != nil {
		t.Fatalf("copy the example configurations: %v", err)
	}
	return dst, ports
}

// daemonProc is one daemon running as a child process in its own process
// group.
type daemonProc struct {
	name, daemon string
	dir, conf    string
	log          string // the daemon's log file
	cmd          *exec.Cmd
	done         chan struct{} // closed when the process was reaped
	waitErr      error         // valid after done
	exitAt       time.Time     // valid after done
}

func (p *daemonProc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process was reaped.
func (p *daemonProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the daemon (not to its group).
func (p *daemonProc) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(p.pid(), sig); err != nil {
		t.Fatalf("%s: send %v: %v", p.name, sig, err)
	}
}

// wait waits for the process to exit, at most d.
func (p *daemonProc) wait(t testing.TB, d time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.waitErr
	case <-time.After(d):
		t.Fatalf("%s (pid %d) still running after %s", p.name, p.pid(), d)
		return nil
	}
}

// startDaemon starts bin --config conf in dir as a child process in its own
// process group, with its output in dir/NAME.out, and registers a cleanup
// that stops it (SIGTERM, then SIGKILL after a deadline) and waits for it.
// args are added to the command line.
func startDaemon(t testing.TB, name, daemon, dir string, args ...string) *daemonProc {
	t.Helper()
	conf := filepath.Join(dir, daemon+".yaml")
	p := startProcess(t, name, dir, binPath(t, daemon), append([]string{"--config", conf}, args...)...)
	p.daemon, p.conf, p.log = daemon, conf, filepath.Join(dir, daemon+".log")
	return p
}

// startProcess starts bin with args in dir as a child process in its own
// process group, with its output in dir/NAME.out; the cleanup stops it.
func startProcess(t testing.TB, name, dir, bin string, args ...string) *daemonProc {
	t.Helper()
	out, err := os.OpenFile(filepath.Join(dir, name+".out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	// Its own group, so the cleanup can end everything it started; and
	// killed with this test binary, should that die first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &daemonProc{name: name, dir: dir, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		p.exitAt = time.Now()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// logFile returns a daemonProc that only stands for the log file path of a
// daemon run by other means (the scripts), for waitLog.
func logFile(name, path string) *daemonProc {
	return &daemonProc{name: name, log: path, done: make(chan struct{})}
}

// stop ends the process group: SIGTERM, SIGKILL after 10s, and waits.
// It does nothing once the process was reaped (its pid and group id may
// then belong to someone else).
func (p *daemonProc) stop(t testing.TB) {
	if p.exited() {
		return
	}
	pgid := p.pid() // the daemon leads its own group
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Logf("%s (pid %d) ignored SIGTERM for 10s; killing it", p.name, pgid)
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
}

// chain is the example chain running from a copy of configs/example.
type chain struct {
	t     testing.TB
	dir   string
	ports map[int]int
	procs map[string]*daemonProc
}

// addr is the loopback address that stands for the example's port.
func (c *chain) addr(examplePort int) string {
	p, ok := c.ports[examplePort]
	if !ok {
		c.t.Fatalf("port %d is not in the example", examplePort)
	}
	return "127.0.0.1:" + strconv.Itoa(p)
}

// targets are the in-test servers that stand for the gateway and the
// endpoints of sites A and B.
type targets struct{ gateway, endpointA, endpointB *target }

// startTargets starts the gateway and endpoint servers.
func startTargets(t testing.TB) *targets {
	t.Helper()
	return &targets{
		gateway:   startTarget(t, "gateway"),
		endpointA: startTarget(t, "endpoint-a"),
		endpointB: startTarget(t, "endpoint-b"),
	}
}

func (tg *targets) fixedPorts() map[int]int {
	return map[int]int{
		portGateway:   tg.gateway.port(),
		portEndpointA: tg.endpointA.port(),
		portEndpointB: tg.endpointB.port(),
	}
}

// startChain copies the example chain with fresh ports and fastTuning,
// pointing its services at tg, starts every daemon and waits until the
// root has learnt the routes to both gwproxies.
func startChain(t testing.TB, tg *targets) *chain {
	t.Helper()
	return startChainWith(t, tg.fixedPorts())
}

// startChainWith is startChain with the services' ports given: fixed maps
// the example's gateway and endpoint ports to the targets' ports.
func startChainWith(t testing.TB, fixed map[int]int) *chain {
	t.Helper()
	dir, ports := copyExample(t, fixed, func(_, text string) string { return text + fastTuning })
	c := &chain{t: t, dir: dir, ports: ports, procs: map[string]*daemonProc{}}
	t.Cleanup(func() {
		// The daemons' logs go with the temporary directory: show their
		// ends when the test failed (the daemons are stopped by now).
		if !t.Failed() {
			return
		}
		for _, n := range exampleNodes {
			if p := c.procs[n.name]; p != nil {
				b, _ := os.ReadFile(p.log)
				t.Logf("--- last lines of %s's log:\n%s", n.name, lastLines(b, 20))
			}
		}
	})
	for _, n := range exampleNodes {
		c.procs[n.name] = startDaemon(t, n.name, n.daemon, filepath.Join(dir, n.name))
	}
	c.waitFormed(0)
	return c
}

// restart starts the daemon of node again from the same configuration.
func (c *chain) restart(name string) *daemonProc {
	c.t.Helper()
	old := c.procs[name]
	p := startDaemon(c.t, name, old.daemon, old.dir)
	c.procs[name] = p
	return p
}

// waitFormed waits until the root's log holds, after its first skip
// bytes, a "route added" line for each gwproxy, and the gwproxies' logs
// show the path up to the root.
func (c *chain) waitFormed(skip int64) {
	c.t.Helper()
	epp := c.procs["epp-main"]
	waitLog(c.t, epp, skip, 20*time.Second, `routing: route added \[label=gwp-site-a `, `routing: route added \[label=gwp-site-b `)
}

// waitLog waits until the log of p, from byte offset skip on, holds a match
// for each pattern (in any order), and returns the offset just after the
// last of those matches. It fails the test after d, showing the log.
func waitLog(t testing.TB, p *daemonProc, skip int64, d time.Duration, patterns ...string) int64 {
	t.Helper()
	res := make([]*regexp.Regexp, len(patterns))
	for i, s := range patterns {
		res[i] = regexp.MustCompile(s)
	}
	deadline := time.Now().Add(d)
	for {
		b, _ := os.ReadFile(p.log)
		if int64(len(b)) > skip {
			tail := b[skip:]
			end, all := 0, true
			for _, re := range res {
				loc := re.FindIndex(tail)
				if loc == nil {
					all = false
					break
				}
				// The end of the line of the match.
				e := loc[1]
				if nl := bytes.IndexByte(tail[e:], '\n'); nl >= 0 {
					e += nl + 1
				}
				end = max(end, e)
			}
			if all {
				return skip + int64(end)
			}
		}
		if p.exited() {
			t.Fatalf("%s exited (%v) while waiting for %q in its log; output:\n%s\nlog:\n%s", p.name, p.waitErr, patterns, readFile(filepath.Join(p.dir, p.name+".out")), lastLines(b, 40))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q in its log within %s; log:\n%s", p.name, patterns, d, lastLines(b, 40))
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

// logSize is the current size of p's log, for waitLog's skip.
func logSize(p *daemonProc) int64 {
	fi, err := os.Stat(p.log)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(b)
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// eventually polls cond every 20ms until it returns nil or d passes, and
// then fails the test with cond's last error.
func eventually(t testing.TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, d, err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

// processesWith returns the pids of the processes whose command line holds
// the argument arg.
func processesWith(arg string) []int {
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

// alive reports whether pid names a process that has not exited (a zombie
// counts as exited).
func alive(pid int) bool {
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
