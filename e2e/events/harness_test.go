package eventse2e

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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The example ports this package uses (configs/example/README.md).
const (
	portDMZ1      = 17101 // relay-dmz1's parent link (epp-main dials)
	portDMZ2      = 17102 // relay-dmz2's parent link (relay-dmz1 dials)
	portDMZ2Out   = 17103 // relay-dmz2's children (the gwproxies dial)
	portSinkLink  = 17201 // gwp-site-a's child link (es-site-a dials)
	portEvents    = 19800 // the event server
	portEIF       = 19810 // es-site-a: EIF over TCP
	portSyslogUDP = 19811 // es-site-a: lines over UDP
	portLinesTCP  = 19812 // es-site-a: lines over TCP
)

// The nodes of the event path, in start order (listeners first).
var pathNodes = []nodeSpec{
	{"relay-dmz2", "relay"},
	{"relay-dmz1", "relay"},
	{"gwp-site-a", "gwproxy"},
	{"es-site-a", "eventsink"},
	{"epp-main", "epproxy"},
}

type nodeSpec struct{ name, daemon string }

// fastTuning is appended to every configuration: faults are noticed fast
// and links come back fast. write_timeout also bounds a keepalive's round
// trip, whose answer queues behind the data on the link: 5s leaves room
// for a loaded machine (see the same setting in package e2e).
const fastTuning = `
# Added by the events e2e test.
tuning:
  keepalive_interval: 500ms
  write_timeout: 5s
  hello_timeout: 2s
  reconnect_min: 50ms
  reconnect_max: 1s
`

// batchEvents is the eventsink's batch size in these tests: the most
// events an epproxy kill -9 may deliver twice.
const batchEvents = 500

var (
	portMu   sync.Mutex
	portUsed = map[int]bool{}
)

// freePort returns a loopback port free for TCP and UDP now, above the
// kernel's ephemeral range (no outgoing connection can take it before the
// daemon binds it) and apart from package e2e's range (20000 up to the
// ephemeral range), so both packages can run at once.
func freePort(t testing.TB) int {
	t.Helper()
	lo := ephemeralHigh() + 1
	portMu.Lock()
	defer portMu.Unlock()
	for range 2000 {
		p := lo + rand.IntN(65535-lo)
		if portUsed[p] {
			continue
		}
		addr := "127.0.0.1:" + strconv.Itoa(p)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err != nil {
			continue
		}
		pc.Close()
		portUsed[p] = true
		return p
	}
	t.Fatal("no free port found")
	return 0
}

// ephemeralHigh is the top of the kernel's ephemeral port range.
func ephemeralHigh() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if hi, err := strconv.Atoi(f[1]); err == nil && hi < 64000 {
				return hi
			}
		}
	}
	return 60999
}

// chain is one run of the event path: its instance directories, ports and
// processes.
type chain struct {
	t     testing.TB
	bin   string
	dir   string
	ports map[int]int // example port -> port of this run
	procs map[string]*proc
}

// chainOpts adjust the configurations.
type chainOpts struct {
	// sinkEvents replaces the eventsink's batch settings (the lines after
	// "dest: epp-main"); empty: sinkDefaults.
	sinkEvents string
	// fsync is the spool's fsync setting (the lines after "dir: spool");
	// empty: spoolDefaults.
	fsync string
}

// spoolDefaults: batched fsync, often, so a test is not slowed down by it.
const spoolDefaults = `    fsync: interval
    fsync_interval: 50ms
`

// sinkDefaults are the eventsink settings of the tests: batches of
// batchEvents, a quick ack timeout, batched fsync.
const sinkDefaults = `  batch_events: 500
  ack_timeout: 5s
`

// newChain writes the configurations of configs/example for the event
// path into a temporary directory, with every example port mapped to a
// free one. It starts nothing.
func newChain(t testing.TB, o chainOpts) *chain {
	t.Helper()
	c := &chain{t: t, bin: binaries(t), dir: t.TempDir(), ports: map[int]int{}, procs: map[string]*proc{}}
	src := filepath.Join(moduleRoot(t), "configs", "example")
	if o.sinkEvents == "" {
		o.sinkEvents = sinkDefaults
	}
	if o.fsync == "" {
		o.fsync = spoolDefaults
	}
	re := regexp.MustCompile(`127\.0\.0\.1:(\d+)`)
	for _, n := range pathNodes {
		b, err := os.ReadFile(filepath.Join(src, n.name, n.daemon+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		replace := func(old, new string) {
			if !strings.Contains(text, old) {
				t.Fatalf("configs/example/%s/%s.yaml no longer has %q; update the test", n.name, n.daemon, old)
			}
			text = strings.Replace(text, old, new, 1)
		}
		replace("shutdown_grace: 5s", "shutdown_grace: 2s")
		switch n.daemon {
		case "epproxy":
			// Only the event server: the test counts what reaches it.
			replace("  file: events.jsonl\n", "  write_timeout: 1s\n")
		case "eventsink":
			replace("  dest: epp-main\n", "  dest: epp-main\n"+o.sinkEvents)
			replace("  spool:\n    dir: spool\n", "  spool:\n    dir: spool\n"+o.fsync)
		}
		text = re.ReplaceAllStringFunc(text, func(m string) string {
			p, _ := strconv.Atoi(m[len("127.0.0.1:"):])
			return "127.0.0.1:" + strconv.Itoa(c.port(p))
		}) + fastTuning
		dir := filepath.Join(c.dir, n.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n.daemon+".yaml"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(c.killAll)
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range pathNodes {
				if p := c.procs[n.name]; p != nil {
					t.Logf("--- last lines of %s:\n%s", p.log, tail(p.log, 25))
				}
			}
		}
	})
	return c
}

// port maps an example port to this run's port.
func (c *chain) port(example int) int {
	p, ok := c.ports[example]
	if !ok {
		p = freePort(c.t)
		c.ports[example] = p
	}
	return p
}

// addr is this run's loopback address for an example port.
func (c *chain) addr(example int) string {
	return "127.0.0.1:" + strconv.Itoa(c.port(example))
}

// startAll starts every node of the path.
func (c *chain) startAll() {
	c.t.Helper()
	for _, n := range pathNodes {
		c.start(n.name)
	}
}

// start starts node name (again).
func (c *chain) start(name string) *proc {
	c.t.Helper()
	if p := c.procs[name]; p != nil && !p.exited() {
		c.t.Fatalf("%s is already running", name)
	}
	var spec nodeSpec
	for _, n := range pathNodes {
		if n.name == name {
			spec = n
		}
	}
	dir := filepath.Join(c.dir, name)
	out, err := os.OpenFile(filepath.Join(dir, "stdout.txt"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(filepath.Join(c.bin, spec.daemon), "--config", filepath.Join(dir, spec.daemon+".yaml"))
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: filepath.Join(dir, spec.daemon+".log"), done: make(chan struct{})}
	go p.reap()
	c.procs[name] = p
	return p
}

// kill9 kills node name with SIGKILL and waits until it is gone.
func (c *chain) kill9(name string) {
	c.t.Helper()
	p := c.procs[name]
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	p.wait(c.t, 10*time.Second)
}

// stop stops node name with SIGTERM and checks that it exits cleanly
// within d.
func (c *chain) stop(name string, d time.Duration) {
	c.t.Helper()
	p := c.procs[name]
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(c.t, d); err != nil {
		c.t.Errorf("%s did not exit cleanly after SIGTERM: %v\n%s", name, err, tail(p.log, 20))
	}
}

// alive fails the test if node name has exited.
func (c *chain) alive(name string) {
	c.t.Helper()
	if p := c.procs[name]; p.exited() {
		c.t.Fatalf("%s exited: %v\n%s", name, p.err, tail(p.log, 30))
	}
}

// killAll kills whatever still runs.
func (c *chain) killAll() {
	for _, p := range c.procs {
		if !p.exited() {
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.done
		}
	}
}

// proc is one daemon process.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func (p *proc) reap() {
	p.err = p.cmd.Wait()
	close(p.done)
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits for the process to end and returns its exit error; it fails
// the test after d.
func (p *proc) wait(t testing.TB, d time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		t.Fatalf("%s still running after %s", p.name, d)
		return nil
	}
}

// logSize is the current size of the process's log file.
func (p *proc) logSize() int64 {
	st, err := os.Stat(p.log)
	if err != nil {
		return 0
	}
	return st.Size()
}

// logSince returns the log from offset on.
func (p *proc) logSince(off int64) string {
	b, err := os.ReadFile(p.log)
	if err != nil || int64(len(b)) < off {
		return ""
	}
	return string(b[off:])
}

// tail returns the last n lines of a file, for failure messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// eventually polls cond every 10ms until it returns nil, and fails the test
// with its last error after d.
func eventually(t testing.TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %v", d, what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitListening waits until a TCP listener answers at addr.
func waitListening(t testing.TB, addr string, d time.Duration) {
	t.Helper()
	eventually(t, d, addr+" to listen", func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// countLog counts the lines of node name's log (all its runs) that
// contain s.
func (c *chain) countLog(name, s string) int {
	p := c.procs[name]
	if p == nil {
		return 0
	}
	b, _ := os.ReadFile(p.log)
	return strings.Count(string(b), s)
}

// waitSpoolAcked waits until the eventsink's spool in dir holds no
// segment: the spool deletes a segment once all its events are
// acknowledged, so every event was acknowledged by the epproxy. (Stopping
// the eventsink while an ack is on its way is no loss, the batch is sent
// again on the next start, but it leaves events pending.)
func waitSpoolAcked(t testing.TB, dir string) {
	t.Helper()
	eventually(t, 30*time.Second, "the eventsink's spool to be acknowledged", func() error {
		segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
		if err != nil || len(segs) > 0 {
			return fmt.Errorf("segments %v (%v)", segs, err)
		}
		return nil
	})
}

// errNotYet is returned by conditions that do not hold yet.
var errNotYet = errors.New("not yet")

// statsLine finds the eventsink's "eventsink stopped" line in log and
// returns its key=value fields.
func statsLine(log string) map[string]string {
	i := strings.LastIndex(log, "eventsink stopped [")
	if i < 0 {
		return nil
	}
	line := log[i+len("eventsink stopped ["):]
	if j := strings.IndexByte(line, ']'); j >= 0 {
		line = line[:j]
	}
	out := map[string]string{}
	for _, kv := range strings.Fields(line) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = v
		}
	}
	return out
}
