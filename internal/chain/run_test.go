package chain

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"
	"go.uber.org/goleak"

	"github.com/relaychain/relaychain/internal/daemon"
	"github.com/relaychain/relaychain/internal/daemon/daemontest"
	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// TestMain fails the package when a goroutine is left once every test has
// run: Run must wait for everything it starts.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testLogger returns a logger at level 3 that writes to t.Log and goes
// quiet when the test ends, and a buffer that keeps every message too.
func testLogger(t testing.TB) (*logrus.Logger, *lockedBuffer) {
	t.Helper()
	buf := &lockedBuffer{}
	lg := daemontest.Logger(t, daemon.LevelInfo)
	lg.AddHook(messageHook{buf})
	return lg, buf
}

// messageHook writes the message of every entry logged, one per line.
type messageHook struct{ w io.Writer }

func (messageHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h messageHook) Fire(e *logrus.Entry) error {
	_, err := io.WriteString(h.w, e.Message+"\n")
	return err
}

// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago (configurations do not take port 0).
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// checkFree fails the test unless addr can be bound again.
func checkFree(t testing.TB, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Errorf("%s is still in use: %v", addr, err)
		return
	}
	_ = ln.Close()
}

// echoServer starts a TCP echo service on 127.0.0.1 and returns its
// address. Each connection gets back what it sends; when the client
// half-closes, the server half-closes too. The cleanup closes everything
// and waits for its goroutines.
func echoServer(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					_ = c.Close()
				}()
				if _, err := io.Copy(c, c); err == nil {
					_ = c.(*net.TCPConn).CloseWrite()
					_, _ = io.Copy(io.Discard, c) // until the far end closes
				}
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// running is a chain.Run started in the background.
type running struct {
	cancel context.CancelFunc
	done   chan error
	node   chan *mux.Node // receives the node once it runs
	logs   *lockedBuffer
	cfg    *Config // the configuration Run was given
	logger *logrus.Logger
}

// startRun loads path for kind k and runs it in-process. The cleanup
// cancels it and waits for Run to return.
func startRun(t testing.TB, k Kind, path string) *running {
	t.Helper()
	cfg, err := Load(k, path)
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	logger, logs := testLogger(t)
	r := &running{done: make(chan error, 1), node: make(chan *mux.Node, 1), logs: logs, cfg: cfg, logger: logger}
	var ctx context.Context
	ctx, r.cancel = context.WithCancel(context.Background())
	hooks := Hooks{Part: RunFunc(func(ctx context.Context, _ *Config, n *mux.Node, _ *logrus.Entry) error {
		r.node <- n
		<-ctx.Done()
		return nil
	})}
	go func() { r.done <- Run(ctx, cfg, logger, hooks) }()
	t.Cleanup(func() {
		r.cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Errorf("%s: Run did not return after cancel", cfg.Label)
		}
	})
	return r
}

// getNode returns the running node.
func (r *running) getNode(t testing.TB) *mux.Node {
	t.Helper()
	select {
	case n := <-r.node:
		r.node <- n
		return n
	case err := <-r.done:
		r.done <- err
		t.Fatalf("Run returned before the node ran: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the node did not start")
	}
	return nil
}

// stop cancels Run and returns its result, failing the test if it takes
// longer than within.
func (r *running) stop(t testing.TB, within time.Duration) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(within):
		t.Fatalf("Run did not return within %s of the cancel", within)
	}
	return nil
}

// smallTree writes an epproxy and a gwproxy configuration for a two-node
// tree on loopback: epp-test listens for gwp-test's link and offers the
// service "gateway" (echo); gwp-test's entry "upcall" leads to it.
func smallTree(t testing.TB, echo string, grace time.Duration) (eppPath, gwpPath, entry, link string) {
	t.Helper()
	link, entry = freeAddr(t), freeAddr(t)
	eppPath = writeConfig(t, "epproxy.yaml", fmt.Sprintf(`label: epp-test
children:
  - label: gwp-test
    listen: %s
    insecure_plaintext: true
services:
  - name: gateway
    addrs: [%s]
shutdown_grace: %s
`, link, echo, grace))
	gwpPath = writeConfig(t, "gwproxy.yaml", fmt.Sprintf(`label: gwp-test
parents:
  - label: epp-test
    dial: %s
    insecure_plaintext: true
entries:
  - name: upcall
    listen: %s
    dest: epp-test
    service: gateway
tuning:
  reconnect_min: 10ms
  reconnect_max: 100ms
shutdown_grace: %s
`, link, entry, grace))
	return eppPath, gwpPath, entry, link
}

// startTree starts the small tree and waits until the gwproxy's link to
// the epproxy is up.
func startTree(t testing.TB, grace time.Duration) (epp, gwp *running, entry, link string) {
	t.Helper()
	eppPath, gwpPath, entry, link := smallTree(t, echoServer(t), grace)
	epp = startRun(t, EPProxy, eppPath)
	gwp = startRun(t, GWProxy, gwpPath)
	n := gwp.getNode(t)
	muxtest.WaitFor(t, 10*time.Second, "gwp-test's path to the root", func() bool {
		p := n.PathToRoot()
		return len(p) == 1 && p[0] == "epp-test"
	})
	return epp, gwp, entry, link
}

// echoOnce writes msg on c and reads it back.
func echoOnce(t testing.TB, c net.Conn, msg []byte) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		errc <- err
	}()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read the echo: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo differs from what was sent (%d bytes)", len(msg))
	}
	_ = c.SetDeadline(time.Time{})
}

func TestRunUpcallAndShutdown(t *testing.T) {
	const grace = 5 * time.Second
	epp, gwp, entry, link := startTree(t, grace)

	// One whole session: a megabyte there and back, then a half-close that
	// the far end answers with its own.
	c, err := net.Dial("tcp", entry)
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 1<<20)
	_, _ = rand.Read(big)
	echoOnce(t, c, big)
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
		t.Fatalf("after the half-close: %d more bytes, %v; want a clean end", len(rest), err)
	}
	_ = c.Close()

	// A session open when the gwproxy is told to stop is drained: it goes
	// on carrying bytes until it ends.
	c2, err := net.Dial("tcp", entry)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	echoOnce(t, c2, []byte("before the cancel\n"))
	// The first session ends on the gwproxy a moment after its client saw
	// the end; wait for that, so that only c2's is left to drain.
	n := gwp.getNode(t)
	muxtest.WaitFor(t, 10*time.Second, "the first session to be released", func() bool { return n.Sessions() == 1 })
	gwp.cancel()
	muxtest.WaitFor(t, 10*time.Second, "the gwproxy to start draining", func() bool {
		return strings.Contains(gwp.logs.String(), "shutting down: draining 1 sessions")
	})
	echoOnce(t, c2, []byte("while draining\n"))
	_ = c2.Close()
	if err := gwp.stop(t, grace); err != nil {
		t.Fatalf("gwproxy Run = %v, want nil", err)
	}
	checkFree(t, entry)

	if err := epp.stop(t, grace); err != nil {
		t.Fatalf("epproxy Run = %v, want nil", err)
	}
	checkFree(t, link)
}

func TestRunAbortsSessionsAfterGrace(t *testing.T) {
	const grace = 200 * time.Millisecond
	_, gwp, entry, _ := startTree(t, grace)
	c, err := net.Dial("tcp", entry)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echoOnce(t, c, []byte("ping\n"))
	n := gwp.getNode(t)
	// The session stays open and idle: the grace period runs out, the
	// session is aborted, and Run still ends without error.
	if err := gwp.stop(t, grace+mux.DefaultTuning().ShutdownAbortWait+5*time.Second); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if left := n.Sessions(); left != 0 {
		t.Errorf("%d sessions left after Run returned", left)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(c); len(b) != 0 || isTimeout(err) {
		t.Errorf("client after the abort: read %q, %v; want the connection ended", b, err)
	}
	if !strings.Contains(gwp.logs.String(), "aborting 1 sessions") {
		t.Errorf("no abort logged:\n%s", gwp.logs.String())
	}
	checkFree(t, entry)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestRunEntryPortInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	link, other := freeAddr(t), freeAddr(t)
	path := writeConfig(t, "epproxy.yaml", fmt.Sprintf(`label: epp-test
children:
  - label: gwp-test
    listen: %s
    insecure_plaintext: true
entries:
  - name: downcall-ok
    listen: %s
    dest: gwp-test
    service: endpoint
  - name: downcall-busy
    listen: %s
    dest: gwp-test
    service: endpoint
`, link, other, busy.Addr()))
	cfg, err := Load(EPProxy, path)
	if err != nil {
		t.Fatal(err)
	}
	logger, _ := testLogger(t)
	hooks := Hooks{Part: RunFunc(func(context.Context, *Config, *mux.Node, *logrus.Entry) error {
		t.Error("Hooks.Run called although the node could not start")
		return nil
	})}
	err = Run(context.Background(), cfg, logger, hooks)
	if err == nil || !strings.Contains(err.Error(), "entry downcall-busy") || !strings.Contains(err.Error(), busy.Addr().String()) {
		t.Fatalf("Run = %v, want an error naming entry downcall-busy and %s", err, busy.Addr())
	}
	// What was bound before the failure is released.
	checkFree(t, link)
	checkFree(t, other)
}

func TestRunLinkPortInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	path := writeConfig(t, "relay.yaml", fmt.Sprintf(`label: r1
parents:
  - label: epp
    listen: %s
    insecure_plaintext: true
`, busy.Addr()))
	cfg, err := Load(Relay, path)
	if err != nil {
		t.Fatal(err)
	}
	logger, _ := testLogger(t)
	err = Run(context.Background(), cfg, logger, Hooks{})
	if err == nil || !strings.Contains(err.Error(), "epp") {
		t.Fatalf("Run = %v, want an error naming the link to epp", err)
	}
}

func TestRunHooks(t *testing.T) {
	eppPath, _, _, link := smallTree(t, "127.0.0.1:9", time.Second)
	cfg, err := Load(EPProxy, eppPath)
	if err != nil {
		t.Fatal(err)
	}
	logger, _ := testLogger(t)

	t.Run("services error", func(t *testing.T) {
		boom := errors.New("boom")
		err := Run(context.Background(), cfg, logger, Hooks{
			Services: func(*Config, *logrus.Entry) (map[string]mux.Service, func(), error) { return nil, nil, boom },
			Part: RunFunc(func(context.Context, *Config, *mux.Node, *logrus.Entry) error {
				t.Error("Hooks.Run called after Services failed")
				return nil
			}),
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Run = %v, want boom", err)
		}
		checkFree(t, link)
	})

	t.Run("run error stops the node", func(t *testing.T) {
		boom := errors.New("boom")
		var released, ranAfterRelease bool
		var got *mux.Node
		err := Run(context.Background(), cfg, logger, Hooks{
			Services: func(c *Config, _ *logrus.Entry) (map[string]mux.Service, func(), error) {
				if c != cfg {
					t.Error("Services got another configuration")
				}
				return map[string]mux.Service{"extra": {Addrs: []string{"127.0.0.1:9"}}}, func() { released = true }, nil
			},
			Part: RunFunc(func(ctx context.Context, _ *Config, n *mux.Node, _ *logrus.Entry) error {
				got = n
				ranAfterRelease = released
				return boom
			}),
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Run = %v, want boom", err)
		}
		if !released || ranAfterRelease {
			t.Errorf("release: called %v, before Hooks.Run %v; want called after", released, ranAfterRelease)
		}
		if got == nil || got.Label() != "epp-test" {
			t.Errorf("Hooks.Run got node %v", got)
		}
		checkFree(t, link)
	})

	t.Run("nil release", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := Run(ctx, cfg, logger, Hooks{
			Services: func(*Config, *logrus.Entry) (map[string]mux.Service, func(), error) { return nil, nil, nil },
		})
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	})
}

// runCLI runs the command line of kind k in-process with args (after the
// program name) and returns its output, its error output and its error.
// Nothing may exit the process.
func runCLI(t *testing.T, k Kind, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	prev := cli.OsExiter
	cli.OsExiter = func(code int) { t.Errorf("os.Exit(%d) called", code) }
	t.Cleanup(func() { cli.OsExiter = prev })
	app := daemon.App(Spec(k, Hooks{}))
	var out, errOut bytes.Buffer
	app.Writer, app.ErrWriter = &out, &errOut
	err = app.RunContext(context.Background(), append([]string{k.Name}, args...))
	return out.String(), errOut.String(), err
}

func TestCLICheck(t *testing.T) {
	t.Run("ok", func(t *testing.T) {
		path := writeConfig(t, "relay.yaml", okRelay)
		out, errOut, err := runCLI(t, Relay, "check", "--config", path)
		if err != nil {
			t.Fatalf("check: %v\n%s", err, errOut)
		}
		if want := path + ": configuration OK\n"; out != want || errOut != "" {
			t.Errorf("stdout %q, stderr %q; want %q and nothing", out, errOut, want)
		}
	})

	t.Run("samples", func(t *testing.T) {
		for _, s := range samples(t) {
			out, errOut, err := runCLI(t, s.kind, "check", "-c", s.path)
			if err != nil || out != s.path+": configuration OK\n" {
				t.Errorf("%s check %s: %q, %v\n%s", s.kind.Name, s.path, out, err, errOut)
			}
		}
	})

	t.Run("broken", func(t *testing.T) {
		path := writeConfig(t, "relay.yaml", `label: r 1
parents:
  - label: epp
    insecure_plaintext: true
tuning:
  window_size: 1KiB
  dial_timeout: 1m
`)
		out, errOut, err := runCLI(t, Relay, "check", "--config", path)
		want := []string{
			path + `:1: label: label "r 1": character ' ' not allowed (only A-Z a-z 0-9 . _ -)`,
			path + ":3: parents[0]: link to epp has no direction: set dial (this node connects) or listen (the neighbour connects)",
			path + ":6: tuning.window_size: 1024 bytes is below the minimum of 256KiB",
			path + ":7: tuning.dial_timeout: 1m0s is above open_timeout 15s: the entry would give up first",
		}
		if got := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("stderr:\n%s\nwant:\n%s", errOut, strings.Join(want, "\n"))
		}
		if out != "" {
			t.Errorf("stdout %q, want nothing", out)
		}
		var le *daemon.LoadError
		if !errors.As(err, &le) || le.Path != path || len(le.Problems) != len(want) {
			t.Fatalf("err = %#v, want a *daemon.LoadError with %d problems", err, len(want))
		}
		if err.Error() != fmt.Sprintf("4 problems in %s", path) {
			t.Errorf("err = %q", err)
		}
	})

	t.Run("wrong kind", func(t *testing.T) {
		// A relay's file checked as an epproxy's: its parents are refused.
		path := writeConfig(t, "relay.yaml", okRelay)
		_, errOut, err := runCLI(t, EPProxy, "check", "--config", path)
		if err == nil || errOut != path+":2: parents: an epproxy has no parents\n" {
			t.Errorf("err %v, stderr %q", err, errOut)
		}
	})

	t.Run("missing file", func(t *testing.T) {
		path := writeConfig(t, "relay.yaml", okRelay) + ".missing"
		_, errOut, err := runCLI(t, Relay, "check", "--config", path)
		if err == nil || !strings.HasPrefix(errOut, path+": cannot read:") {
			t.Errorf("err %v, stderr %q", err, errOut)
		}
	})
}

// TestCLIRun runs a relay through its command line until the context ends.
func TestCLIRun(t *testing.T) {
	path := writeConfig(t, "relay.yaml", fmt.Sprintf("label: r1\nparents:\n  - label: epp\n    listen: %s\n    insecure_plaintext: true\nlog:\n  level: 0\n", freeAddr(t)))
	cfg, err := Load(Relay, path)
	if err != nil {
		t.Fatal(err)
	}
	prev := cli.OsExiter
	cli.OsExiter = func(code int) { t.Errorf("os.Exit(%d) called", code) }
	t.Cleanup(func() { cli.OsExiter = prev })
	app := daemon.App(Spec(Relay, Hooks{}))
	var out, errOut bytes.Buffer
	app.Writer, app.ErrWriter = &out, &errOut
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.RunContext(ctx, []string{"relay", "--config", path}) }()
	// The relay is up once its link port refuses a second bind.
	muxtest.WaitFor(t, 10*time.Second, "the relay's link listener", func() bool {
		ln, err := net.Listen("tcp", cfg.Parents[0].Listen.first())
		if err != nil {
			return true
		}
		_ = ln.Close()
		return false
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("relay: %v\n%s", err, errOut.String())
		}
	case <-time.After(cfg.ShutdownGrace):
		t.Fatal("relay did not stop within its grace period")
	}
	checkFree(t, cfg.Parents[0].Listen.first())
}
