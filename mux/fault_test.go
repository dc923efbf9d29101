package mux_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// faultProxy forwards the TCP connections made to its address to target,
// and fails like a network on request: cut resets every connection it
// carries (SetLinger(0) and Close on both sides); blackhole stops
// forwarding and stops reading, without closing anything, so that only the
// ends' keepalives can notice.
type faultProxy struct {
	ln     net.Listener
	target string
	done   chan struct{}
	wg     sync.WaitGroup

	mu     sync.Mutex
	gate   chan struct{} // closed while forwarding
	conns  map[*net.TCPConn]struct{}
	closed bool
}

func startProxy(t testing.TB, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	open := make(chan struct{})
	close(open)
	p := &faultProxy{ln: ln, target: target, done: make(chan struct{}), gate: open, conns: map[*net.TCPConn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *faultProxy) addr() string { return p.ln.Addr().String() }

func (p *faultProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.handle(c.(*net.TCPConn))
	}
}

func (p *faultProxy) track(c *net.TCPConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *faultProxy) untrack(c *net.TCPConn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

// waitGate blocks while the proxy is blackholed; false: the proxy closed.
func (p *faultProxy) waitGate() bool {
	p.mu.Lock()
	g := p.gate
	p.mu.Unlock()
	select {
	case <-g:
		return true
	case <-p.done:
		return false
	}
}

func (p *faultProxy) handle(a *net.TCPConn) {
	defer p.wg.Done()
	if !p.track(a) {
		_ = a.Close()
		return
	}
	defer p.untrack(a)
	if !p.waitGate() {
		return
	}
	bc, err := net.Dial("tcp", p.target)
	if err != nil {
		resetConn(a)
		return
	}
	b := bc.(*net.TCPConn)
	if !p.track(b) {
		_ = b.Close()
		return
	}
	defer p.untrack(b)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.pipe(b, a)
	}()
	p.pipe(a, b)
	wg.Wait()
}

// pipe copies src to dst while the gate is open: a clean end half-closes
// dst, an error resets both.
func (p *faultProxy) pipe(src, dst *net.TCPConn) {
	buf := make([]byte, 32<<10)
	for {
		if !p.waitGate() {
			return
		}
		n, err := src.Read(buf)
		if n > 0 {
			if !p.waitGate() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				resetConn(src)
				resetConn(dst)
				return
			}
		}
		if err == io.EOF {
			_ = dst.CloseWrite()
			return
		}
		if err != nil {
			resetConn(src)
			resetConn(dst)
			return
		}
	}
}

func resetConn(c *net.TCPConn) {
	_ = c.SetLinger(0)
	_ = c.Close()
}

// cut resets every connection the proxy carries. New connections are
// forwarded as before.
func (p *faultProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		resetConn(c)
	}
}

// blackhole stops forwarding and reading on every connection, present and
// new, until heal.
func (p *faultProxy) blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gate = make(chan struct{})
}

// heal forwards again. The connections that lived through the blackhole
// are dropped first: their ends have given up on them.
func (p *faultProxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		resetConn(c)
	}
	close(p.gate)
}

func (p *faultProxy) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.done)
	_ = p.ln.Close()
	for c := range p.conns {
		resetConn(c)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// tchain is the four-node chain of startChain, built with what startChain
// does not offer: every node's log kept in a sink, proxies in front of
// relay1's links, fixed addresses, and start-up from the leaf upwards.
type tchain struct {
	*chain
	t      testing.TB
	tun    mux.Tuning
	logs   map[string]*logSink // by label
	r1Addr string              // relay1's link listen address
	// rootProxy carries root-relay1, childProxy relay2-relay1 (proxied).
	rootProxy, childProxy *faultProxy
}

type tchainOpts struct {
	chainOpts
	proxied   bool // put a faultProxy in front of each of relay1's links
	leafFirst bool // start the leaf first and the root last
}

func relay1Config(tun mux.Tuning, addr string) mux.Config {
	return mux.Config{Label: "relay1", Role: mux.RoleRelay, Tuning: tun, Links: []mux.LinkConfig{
		{Peer: "root", Parent: true, Listen: addr},
		{Peer: "relay2", Listen: addr},
	}}
}

func startTestChain(t testing.TB, o tchainOpts) *tchain {
	t.Helper()
	if o.tuning == (mux.Tuning{}) {
		o.tuning = muxtest.FastTuning()
	}
	tc := &tchain{chain: &chain{}, t: t, tun: o.tuning, logs: map[string]*logSink{}}
	r1, r2 := o.r1Listen, o.r2Listen
	if o.leafFirst || o.proxied {
		// The dialling sides need the addresses before the listeners
		// exist.
		if r1 == "" {
			r1 = freeAddr(t)
		}
		if r2 == "" {
			r2 = freeAddr(t)
		}
	}
	if r1 == "" {
		r1 = "127.0.0.1:0"
	}
	if r2 == "" {
		r2 = "127.0.0.1:0"
	}
	startR1 := func() {
		tc.r1 = tc.start(relay1Config(o.tuning, r1))
		tc.r1Addr = tc.r1.LinkAddr("root").String()
	}
	rootDial, r2Dial := func() string { return tc.r1Addr }, func() string { return tc.r1Addr }
	if o.proxied {
		tc.r1Addr = r1
		tc.rootProxy, tc.childProxy = startProxy(t, r1), startProxy(t, r1)
		rootDial = tc.rootProxy.addr
		r2Dial = tc.childProxy.addr
	}
	startRoot := func() {
		tc.root = tc.start(mux.Config{Label: "root", Role: mux.RoleRoot, Tuning: o.tuning, Services: o.rootServices, Links: []mux.LinkConfig{
			{Peer: "relay1", Dial: rootDial()},
		}}, o.rootOpts...)
	}
	startR2 := func() {
		tc.r2 = tc.start(mux.Config{Label: "relay2", Role: mux.RoleRelay, Tuning: o.tuning, Links: []mux.LinkConfig{
			{Peer: "relay1", Parent: true, Dial: r2Dial()},
			{Peer: "leaf", Listen: r2},
		}})
	}
	startLeaf := func(r2 string) {
		tc.leaf = tc.start(mux.Config{Label: "leaf", Role: mux.RoleLeaf, Tuning: o.tuning, Services: o.leafServices, Links: []mux.LinkConfig{
			{Peer: "relay2", Parent: true, Dial: r2},
		}}, o.leafOpts...)
	}
	if o.leafFirst {
		if !o.proxied {
			tc.r1Addr = r1
		}
		startLeaf(r2)
		startR2()
		muxtest.WaitFor(t, 5*time.Second, "the leaf to connect to relay2", func() bool { return len(tc.r2.Links()) == 1 })
		startR1()
		startRoot()
	} else {
		startR1()
		startRoot()
		startR2()
		startLeaf(tc.r2.LinkAddr("leaf").String())
	}
	tc.waitRoutes(t)
	t.Cleanup(tc.checkDrained)
	return tc
}

// start starts a node whose log goes to the test and to a sink.
func (tc *tchain) start(cfg mux.Config, opts ...muxtest.Option) *mux.Node {
	tc.t.Helper()
	log, sink := captureLog(tc.t)
	tc.logs[cfg.Label] = sink
	return muxtest.StartNode(tc.t, cfg, append([]muxtest.Option{muxtest.WithLog(log)}, opts...)...)
}

// checkDrained is the end-of-test check that no session is left in any
// node's table.
func (tc *tchain) checkDrained() {
	checkNoSessions(tc.t, tc.nodes()...)
}

// checkNoSessions fails the test, without stopping it (it runs in
// cleanups), when a node still carries a session after a short wait.
func checkNoSessions(t testing.TB, nodes ...*mux.Node) {
	t.Helper()
	if t.Failed() {
		return // the failure is reported already
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := map[string]int{}
		for _, n := range nodes {
			if s := n.Sessions(); s != 0 {
				left[n.Label()] = s
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("sessions left at the end of the test: %v", left)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// faultBound is how long a dead link may take to be noticed and its
// sessions aborted: a keepalive interval and a write timeout (the bound
// that Tuning documents), plus slack for a loaded -race run.
func faultBound(tun mux.Tuning) time.Duration {
	return tun.KeepAliveInterval + tun.WriteTimeout + 3*time.Second
}

// flow is one end of a session in a fault test, on a real TCP socket: it
// reads everything that comes and (when sending) writes a paced stream,
// until either fails, and records how its read side ended.
type flow struct {
	c        *net.TCPConn
	in, out  atomic.Int64
	done     chan struct{} // closed when the read side ended
	rerr     error         // how it ended; set before done is closed
	wdone    chan struct{} // closed when the write side ended
	werr     error         // how it ended; set before wdone is closed
	quit     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
	fast     bool // send as fast as the socket takes it, unpaced
}

func startFlow(c *net.TCPConn, send, read bool) *flow {
	return startFlowPace(c, send, read, false)
}

func startFlowPace(c *net.TCPConn, send, read, fast bool) *flow {
	f := &flow{c: c, done: make(chan struct{}), wdone: make(chan struct{}), quit: make(chan struct{}), fast: fast}
	if !send {
		close(f.wdone)
	}
	if send {
		f.wg.Add(1)
		go f.write()
	}
	if read {
		f.wg.Add(1)
		go f.read()
	}
	return f
}

func (f *flow) read() {
	defer f.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := f.c.Read(buf)
		f.in.Add(int64(n))
		if err != nil {
			f.rerr = err
			close(f.done)
			return
		}
	}
}

// write sends 8 KiB every 2ms (4 MB/s): enough to be mid-transfer at any
// moment, little enough not to load the links. A fast flow does not wait.
func (f *flow) write() {
	defer f.wg.Done()
	defer close(f.wdone)
	buf := make([]byte, 8<<10)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		n, err := f.c.Write(buf)
		f.out.Add(int64(n))
		if err != nil {
			f.werr = err
			return
		}
		if f.fast {
			select {
			case <-f.quit:
				return
			default:
				continue
			}
		}
		select {
		case <-tick.C:
		case <-f.quit:
			return
		}
	}
}

// waitStalled waits until f's sender is held: its byte count does not move
// for several polls in a row.
func waitStalled(t testing.TB, f *flow) {
	t.Helper()
	last, still := int64(-1), 0
	muxtest.WaitFor(t, 20*time.Second, "the sender to be held by flow control", func() bool {
		time.Sleep(50 * time.Millisecond) // the poll interval of a stall
		n := f.out.Load()
		if n == last && n > 0 {
			still++
		} else {
			still = 0
		}
		last = n
		return still >= 4
	})
}

// stop closes the socket and waits for the flow's goroutines.
func (f *flow) stop() {
	f.stopOnce.Do(func() {
		close(f.quit)
		_ = f.c.Close()
	})
	f.wg.Wait()
}

// dialFlow connects to an entry and runs a flow on the connection; the
// test's cleanup stops it.
func dialFlow(t testing.TB, addr string, send, read bool) *flow {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	f := startFlow(nc.(*net.TCPConn), send, read)
	t.Cleanup(f.stop)
	return f
}

// flowTarget is a target that runs a flow on every connection and hands
// it to the test.
func flowTarget(t testing.TB, send bool) (*target, chan *flow) {
	t.Helper()
	return flowTargetPace(t, send, false)
}

func flowTargetPace(t testing.TB, send, fast bool) (*target, chan *flow) {
	t.Helper()
	flows := make(chan *flow, 64)
	srv := startTarget(t, func(c *net.TCPConn) {
		f := startFlowPace(c, send, true, fast)
		flows <- f
		<-f.done
		<-f.wdone // the test may want to know how the write side ended
		f.stop()
	})
	return srv, flows
}

func nextFlow(t testing.TB, flows chan *flow) *flow {
	t.Helper()
	select {
	case f := <-flows:
		return f
	case <-time.After(10 * time.Second):
		t.Fatal("no session reached the target")
		return nil
	}
}

// waitMoving waits until f has received and (if it sends) sent some bytes.
func waitMoving(t testing.TB, what string, fs ...*flow) {
	t.Helper()
	muxtest.WaitFor(t, 10*time.Second, what+": bytes flowing", func() bool {
		for _, f := range fs {
			if f.in.Load() < 64<<10 {
				return false
			}
		}
		return true
	})
}

// assertReset waits up to d for f's read side to end and checks that the
// socket was reset, never closed cleanly. Linux reports a reset once, to
// the first read or write that comes: when the read side saw the end of
// the stream, the write side must have been told of the reset.
func assertReset(t testing.TB, f *flow, d time.Duration, who string) {
	t.Helper()
	deadline := time.After(d)
	select {
	case <-f.done:
	case <-deadline:
		t.Fatalf("%s: no abort within %s (%d bytes in, %d out)", who, d, f.in.Load(), f.out.Load())
	}
	if errors.Is(f.rerr, syscall.ECONNRESET) {
		return
	}
	select {
	case <-f.wdone:
	case <-deadline:
		t.Fatalf("%s: read ended with %v and the writer goes on", who, f.rerr)
	}
	if !errors.Is(f.werr, syscall.ECONNRESET) {
		t.Fatalf("%s: the socket ended with %v (read) and %v (write), want a reset", who, f.rerr, f.werr)
	}
}

// drainReset reads a socket that was not being read until it fails, and
// checks that it was reset.
func drainReset(t testing.TB, f *flow, who string) {
	t.Helper()
	_ = f.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, f.c)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("%s: the socket ended with %v, want a reset", who, err)
	}
}

// sessionsWork runs a full-duplex session each way through the chain, over
// Node.Open, and checks the bytes.
func sessionsWork(t testing.TB, c *chain, service string) {
	t.Helper()
	ctx := context.Background()
	if err := openExchange(ctx, c.leaf, "root", service, 300000, 200000, 77); err != nil {
		t.Fatalf("leaf to root: %v", err)
	}
	if err := openExchange(ctx, c.root, "leaf", service, 200000, 300000, 78); err != nil {
		t.Fatalf("root to leaf: %v", err)
	}
}

// TestEntryStatusFailures: a session that cannot be opened fails at the
// entry with the status of the node that decided, logged at error level
// there, and the TCP client's connection is reset at once.
func TestEntryStatusFailures(t *testing.T) {
	checkReleased(t)
	closed := freeAddr(t) // nothing listens here
	lnNoRoute, lnRefused, lnDenied := listenEntry(t), listenEntry(t), listenEntry(t)
	tc := startTestChain(t, tchainOpts{chainOpts: chainOpts{
		rootServices: map[string]mux.Service{"dead": {Addrs: []string{closed}}},
		leafOpts: []muxtest.Option{
			muxtest.WithEntry(lnNoRoute, "noroute", "nowhere", "x"),
			muxtest.WithEntry(lnRefused, "refused", "root", "dead"),
			muxtest.WithEntry(lnDenied, "denied", "root", "nosuch"),
		},
	}})
	for _, tt := range []struct {
		ln     net.Listener
		want   error
		reason string
	}{
		{lnNoRoute, mux.ErrNoRoute, "nowhere is unknown to the root"},
		{lnRefused, mux.ErrRefused, "connection refused"},
		{lnDenied, mux.ErrDenied, "service nosuch is not offered by root"},
	} {
		t.Run(tt.want.Error(), func(t *testing.T) {
			// The reset may come before the connect completes.
			nc, err := net.Dial("tcp", tt.ln.Addr().String())
			if err == nil {
				f := startFlow(nc.(*net.TCPConn), false, true)
				t.Cleanup(f.stop)
				assertReset(t, f, 5*time.Second, "entry client")
			} else if !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("dial the entry: %v", err)
			}
			rec := tc.logs["leaf"].waitLog(t, "the failed open", errorWith(tt.reason))
			var se *mux.StatusError
			if err := rec.err(); !errors.Is(err, tt.want) || !errors.As(err, &se) || se.Node != "root" {
				t.Fatalf("logged error %v; want %v decided at root", err, tt.want)
			}
		})
	}
	// The same through Node.Open.
	_, err := tc.leaf.Open(context.Background(), "root", "nosuch")
	var se *mux.StatusError
	if !errors.Is(err, mux.ErrDenied) || !errors.As(err, &se) || se.Node != "root" || !strings.Contains(se.Reason, "nosuch") {
		t.Fatalf("open of an unknown service: %v", err)
	}
}

// TestAbortClientReset: the entry's TCP client resets its connection in
// the middle of a transfer both ways; the target's socket at the other end
// is reset too (not closed cleanly), and every node releases the session.
func TestAbortClientReset(t *testing.T) {
	checkReleased(t)
	srv, flows := flowTarget(t, true)
	ln := listenEntry(t)
	c := startChain(t, chainOpts{
		rootServices: map[string]mux.Service{"flow": {Addrs: []string{srv.addr()}}},
		leafOpts:     []muxtest.Option{muxtest.WithEntry(ln, "flow", "root", "flow")},
	})
	client := dialFlow(t, ln.Addr().String(), true, true)
	tgt := nextFlow(t, flows)
	waitMoving(t, "session", client, tgt)
	resetConn(client.c)
	assertReset(t, tgt, 5*time.Second, "target")
	assertDrained(t, c.nodes()...)
	srv.waitClosed(t, 1)
}

// TestAbortTargetReset: the target resets its connection mid-transfer; the
// entry's TCP client sees a reset.
func TestAbortTargetReset(t *testing.T) {
	checkReleased(t)
	srv, flows := flowTarget(t, true)
	ln := listenEntry(t)
	c := startChain(t, chainOpts{
		leafServices: map[string]mux.Service{"flow": {Addrs: []string{srv.addr()}}},
		rootOpts:     []muxtest.Option{muxtest.WithEntry(ln, "flow", "leaf", "flow")},
	})
	client := dialFlow(t, ln.Addr().String(), true, true)
	tgt := nextFlow(t, flows)
	waitMoving(t, "session", client, tgt)
	resetConn(tgt.c)
	assertReset(t, client, 5*time.Second, "entry client")
	assertDrained(t, c.nodes()...)
	srv.waitClosed(t, 1)
}

// TestAbortOpenConn: an in-process end (Node.Open) that aborts is seen as
// an abort by the target, and one whose target resets reads an error
// matching ErrAborted, never io.EOF.
func TestAbortOpenConn(t *testing.T) {
	checkReleased(t)
	srv, flows := flowTarget(t, true)
	c := startChain(t, chainOpts{leafServices: map[string]mux.Service{"flow": {Addrs: []string{srv.addr()}}}})

	conn, err := c.root.Open(context.Background(), "leaf", "flow")
	if err != nil {
		t.Fatal(err)
	}
	tgt := nextFlow(t, flows)
	if _, err := conn.Write(make([]byte, 100000)); err != nil {
		t.Fatal(err)
	}
	conn.Abort(errors.New("test abort"))
	assertReset(t, tgt, 5*time.Second, "target")
	if _, err := conn.Read(make([]byte, 10)); !errors.Is(err, mux.ErrAborted) {
		t.Fatalf("read after abort: %v", err)
	}

	conn, err = c.root.Open(context.Background(), "leaf", "flow")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tgt = nextFlow(t, flows)
	if _, err := io.ReadFull(conn, make([]byte, 64<<10)); err != nil {
		t.Fatalf("read from the target: %v", err)
	}
	resetConn(tgt.c)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.Copy(io.Discard, conn)
	if !errors.Is(err, mux.ErrAborted) || errors.Is(err, mux.ErrTimeout) {
		t.Fatalf("read after the target's reset: %v, want an abort", err)
	}
	conn.Close()
	assertDrained(t, c.nodes()...)
	srv.waitClosed(t, 2)
}

// TestIdleTimeout: with Tuning.IdleTimeout set, a session that moves no
// byte is aborted at both ends and released on every node, while a busy
// session beside it goes on.
func TestIdleTimeout(t *testing.T) {
	checkReleased(t)
	tun := muxtest.FastTuning()
	// Long enough that a busy session never stalls that long, even on a
	// loaded machine under -race.
	tun.IdleTimeout = time.Second
	srv, flows := flowTarget(t, false)
	busySrv, busyFlows := flowTarget(t, true)
	ln, busyLn := listenEntry(t), listenEntry(t)
	c := startChain(t, chainOpts{
		tuning: tun,
		rootServices: map[string]mux.Service{
			"idle": {Addrs: []string{srv.addr()}},
			"busy": {Addrs: []string{busySrv.addr()}},
		},
		leafOpts: []muxtest.Option{
			muxtest.WithEntry(ln, "idle", "root", "idle"),
			muxtest.WithEntry(busyLn, "busy", "root", "busy"),
		},
	})
	busy := dialFlow(t, busyLn.Addr().String(), true, true)
	busyTgt := nextFlow(t, busyFlows)
	start := time.Now()
	client := dialFlow(t, ln.Addr().String(), false, true)
	tgt := nextFlow(t, flows)
	assertReset(t, client, tun.IdleTimeout+3*time.Second, "idle entry client")
	assertReset(t, tgt, 3*time.Second, "idle target")
	if d := time.Since(start); d < tun.IdleTimeout {
		t.Fatalf("idle session aborted after %s, before the idle timeout", d)
	}
	muxtest.WaitFor(t, 5*time.Second, "the idle session to be released", func() bool {
		for _, n := range c.nodes() {
			if n.Sessions() != 1 {
				return false
			}
		}
		return true
	})
	// The busy session lives on, well past the idle timeout.
	<-time.After(2 * tun.IdleTimeout)
	for _, f := range []*flow{busy, busyTgt} {
		select {
		case <-f.done:
			t.Fatalf("busy session ended: %v", f.rerr)
		default:
		}
	}
	busy.stop()
	assertDrained(t, c.nodes()...)
	srv.waitClosed(t, 1)
	busySrv.waitClosed(t, 1)
}

// TestHalfCloseOutlivesStreamCloseTimeout: after one end half-closes, the
// other direction may go on for longer than StreamCloseTimeout and still
// deliver every byte: a half-close is not a close.
func TestHalfCloseOutlivesStreamCloseTimeout(t *testing.T) {
	checkReleased(t)
	tun := muxtest.FastTuning()
	tun.StreamCloseTimeout = 300 * time.Millisecond
	const part = 100000
	srv := startTarget(t, func(c *net.TCPConn) {
		// Read the request to its end, answer one part, wait past the
		// stream close timeout, answer another, and end.
		if _, err := io.Copy(io.Discard, c); err != nil {
			return
		}
		if _, err := io.CopyN(c, newTestStream(9), part); err != nil {
			return
		}
		<-time.After(4 * tun.StreamCloseTimeout)
		if _, err := io.CopyN(c, newTestStream(10), part); err != nil {
			return
		}
		_ = c.CloseWrite()
	})
	ln := listenEntry(t)
	c := startChain(t, chainOpts{
		tuning:       tun,
		leafServices: map[string]mux.Service{"slow": {Addrs: []string{srv.addr()}}},
		rootOpts:     []muxtest.Option{muxtest.WithEntry(ln, "slow", "leaf", "slow")},
	})
	want := append(make([]byte, 0, 2*part), make([]byte, 2*part)...)
	_, _ = io.ReadFull(newTestStream(9), want[:part])
	_, _ = io.ReadFull(newTestStream(10), want[part:])

	check := func(t *testing.T, rw io.ReadWriter, closeWrite func() error) {
		t.Helper()
		if _, err := rw.Write([]byte("request")); err != nil {
			t.Fatal(err)
		}
		if err := closeWrite(); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rw)
		if err != nil {
			t.Fatalf("reply after %d bytes: %v", len(got), err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("reply: %d bytes, want %d", len(got), len(want))
		}
	}
	t.Run("open", func(t *testing.T) {
		conn, err := c.root.Open(context.Background(), "leaf", "slow")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		check(t, conn, conn.CloseWrite)
	})
	t.Run("entry", func(t *testing.T) {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn := nc.(*net.TCPConn)
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		check(t, conn, conn.CloseWrite)
	})
	assertDrained(t, c.nodes()...)
	srv.waitClosed(t, 2)
}

// faultSessions are the sessions a fault test breaks: one up and one down
// through the chain, moving bytes both ways, and one whose client does
// not read while its target sends as fast as it can, so that its entry is
// blocked writing to the client and its target is held by flow control.
type faultSessions struct {
	upClient, upTarget     *flow
	downClient, downTarget *flow
	frozenClient           *flow
	frozenTarget           *flow
}

// faultSetup is what startFaultSessions needs: targets and entries.
type faultSetup struct {
	flows, hoses           chan *flow
	srv, hose, duplex      *target
	upLn, downLn, frozenLn net.Listener
	services               map[string]mux.Service
	leafOpts, rootOpts     []muxtest.Option
}

func newFaultSetup(t testing.TB) *faultSetup {
	t.Helper()
	f := &faultSetup{}
	f.srv, f.flows = flowTarget(t, true)
	f.hose, f.hoses = flowTargetPace(t, true, true)
	f.duplex = startTarget(t, serveDuplex)
	f.upLn, f.downLn, f.frozenLn = listenEntry(t), listenEntry(t), listenEntry(t)
	f.services = map[string]mux.Service{
		"flow":     {Addrs: []string{f.srv.addr()}},
		"firehose": {Addrs: []string{f.hose.addr()}},
		"duplex":   {Addrs: []string{f.duplex.addr()}},
	}
	f.leafOpts = []muxtest.Option{muxtest.WithEntry(f.upLn, "up", "root", "flow")}
	f.rootOpts = []muxtest.Option{
		muxtest.WithEntry(f.downLn, "down", "leaf", "flow"),
		muxtest.WithEntry(f.frozenLn, "frozen", "leaf", "firehose"),
	}
	return f
}

func (f *faultSetup) start(t testing.TB, tc *tchain) *faultSessions {
	t.Helper()
	s := &faultSessions{}
	s.upClient = dialFlow(t, f.upLn.Addr().String(), true, true)
	s.upTarget = nextFlow(t, f.flows)
	s.downClient = dialFlow(t, f.downLn.Addr().String(), true, true)
	s.downTarget = nextFlow(t, f.flows)
	s.frozenClient = dialFlow(t, f.frozenLn.Addr().String(), false, false)
	s.frozenTarget = nextFlow(t, f.hoses)
	waitMoving(t, "fault sessions", s.upClient, s.upTarget, s.downClient, s.downTarget)
	waitStalled(t, s.frozenTarget)
	for _, n := range tc.nodes() {
		if got := n.Sessions(); got != 3 {
			t.Fatalf("%s carries %d sessions, want 3", n.Label(), got)
		}
	}
	return s
}

// waitClosed checks that the targets saw every connection closed.
func (f *faultSetup) waitClosed(t testing.TB, flows, hoses, duplex int64) {
	t.Helper()
	f.srv.waitClosed(t, flows)
	f.hose.waitClosed(t, hoses)
	f.duplex.waitClosed(t, duplex)
}

// assertAllReset checks that every end of every fault session saw a reset
// within d, and that every node released the sessions within d.
func (s *faultSessions) assertAllReset(t testing.TB, tc *tchain, d time.Duration) {
	t.Helper()
	start := time.Now()
	assertReset(t, s.upClient, d, "up session: entry client")
	assertReset(t, s.upTarget, d-time.Since(start), "up session: target")
	assertReset(t, s.downClient, d-time.Since(start), "down session: entry client")
	assertReset(t, s.downTarget, d-time.Since(start), "down session: target")
	assertReset(t, s.frozenTarget, d-time.Since(start), "frozen session: target")
	for {
		left := ""
		for _, n := range tc.nodes() {
			if got := n.Sessions(); got != 0 {
				left += fmt.Sprintf(" %s:%d", n.Label(), got)
			}
		}
		if left == "" {
			break
		}
		if time.Since(start) > d {
			t.Fatalf("sessions not released within %s:%s", d, left)
		}
		time.Sleep(5 * time.Millisecond)
	}
	drainReset(t, s.frozenClient, "frozen session: entry client")
}

// TestRelayLinksCut breaks both of relay1's links in the middle of
// transfers, by a cut (reset) or a blackhole (silence). Every session
// through relay1 ends with a reset at both ends within the keepalive
// bound, every node releases them, and no goroutine or socket is left.
// Then the links come back and new sessions work end to end.
func TestRelayLinksCut(t *testing.T) {
	for _, mode := range []string{"cut", "blackhole"} {
		t.Run(mode, func(t *testing.T) {
			checkReleased(t)
			fs := newFaultSetup(t)
			tc := startTestChain(t, tchainOpts{proxied: true, chainOpts: chainOpts{
				tuning:       faultTuning(),
				rootServices: fs.services,
				leafServices: fs.services,
				leafOpts:     fs.leafOpts,
				rootOpts:     fs.rootOpts,
			}})
			s := fs.start(t, tc)
			if mode == "cut" {
				tc.rootProxy.cut()
				tc.childProxy.cut()
			} else {
				tc.rootProxy.blackhole()
				tc.childProxy.blackhole()
			}
			s.assertAllReset(t, tc, faultBound(tc.tun))
			if mode == "blackhole" {
				tc.rootProxy.heal()
				tc.childProxy.heal()
			}
			tc.waitRoutes(t)
			sessionsWork(t, tc.chain, "duplex")
			assertDrained(t, tc.nodes()...)
			fs.waitClosed(t, 2, 1, 2)
		})
	}
}

// TestRelayKilledAndRestarted shuts relay1 down in the middle of transfers
// with a short grace: Shutdown reports the sessions it had to abort, every
// session through it ends with a reset at both ends, every node releases
// them. A new relay1 on the same address is taken back by its neighbours,
// the routes are learned again and new sessions work.
func TestRelayKilledAndRestarted(t *testing.T) {
	checkReleased(t)
	fs := newFaultSetup(t)
	tc := startTestChain(t, tchainOpts{chainOpts: chainOpts{
		tuning:       faultTuning(),
		r1Listen:     freeAddr(t),
		rootServices: fs.services,
		leafServices: fs.services,
		leafOpts:     fs.leafOpts,
		rootOpts:     fs.rootOpts,
	}})
	s := fs.start(t, tc)
	old := tc.r1
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := old.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shutdown with sessions left: %v, want the context's error", err)
	}
	if got := old.Sessions(); got != 0 {
		t.Fatalf("relay1 carries %d sessions after Shutdown", got)
	}
	s.assertAllReset(t, tc, faultBound(tc.tun))

	tc.r1 = tc.start(relay1Config(tc.tun, tc.r1Addr))
	tc.waitRoutes(t)
	sessionsWork(t, tc.chain, "duplex")
	assertDrained(t, tc.nodes()...)
	fs.waitClosed(t, 2, 1, 2)
}

// faultTuning is fastTuning with small windows, so that a session whose
// client does not read backs up quickly.
func faultTuning() mux.Tuning {
	t := muxtest.FastTuning()
	t.WindowSize = 256 << 10
	return t
}

// rawHello dials addr, sends b and reads the node's answer (its hello and
// verdict); then it checks that the node closes the connection.
func rawHello(t testing.TB, addr string, b []byte) (h mux.Hello, ok bool, reason string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	h, err = mux.ReadHello(c)
	if err != nil {
		t.Fatalf("the node's hello: %v", err)
	}
	ok, reason, err = mux.ReadVerdict(c)
	if err != nil {
		t.Fatalf("the node's verdict: %v", err)
	}
	if !ok {
		if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
			t.Fatalf("after a refusal the node sent more (%d bytes, %v)", n, err)
		}
	}
	return h, ok, reason
}

// TestHelloRefusals: relay1's link listener refuses a wrong protocol
// version, an unexpected label, a duplicate label, a side or role mismatch
// and garbage; each refusal is logged at error level with its reason on
// relay1, and on the other side too where that is a node; no link comes up
// and the listener goes on serving.
func TestHelloRefusals(t *testing.T) {
	checkReleased(t)
	echo := startEcho(t)
	tc := startTestChain(t, tchainOpts{chainOpts: chainOpts{rootServices: map[string]mux.Service{"echo": {Addrs: []string{echo.addr()}}}}})
	addr := tc.r1Addr
	r1log := tc.logs["relay1"]

	raw := []struct {
		name   string
		msg    []byte
		reason string
		is     error
	}{
		{"version", mux.Hello{Version: mux.ProtoVersion + 1, Role: mux.RoleLeaf, Label: "relay2"}.Encode(), "speaks protocol version 2", mux.ErrVersion},
		{"unexpected label", mux.Hello{Version: mux.ProtoVersion, Role: mux.RoleRelay, Label: "stranger"}.Encode(), "unexpected label stranger on this port (expected relay2,root)", mux.ErrRejected},
		{"duplicate label", mux.Hello{Version: mux.ProtoVersion, Role: mux.RoleRelay, Label: "relay2"}.Encode(), "duplicate label: relay2 is already connected", mux.ErrRejected},
		{"both parents", mux.Hello{Version: mux.ProtoVersion, Role: mux.RoleRelay, Parent: true, Label: "relay2"}.Encode(), "relay2 is configured as this node's child but takes this node as its child", mux.ErrRejected},
		{"both children", mux.Hello{Version: mux.ProtoVersion, Role: mux.RoleRoot, Label: "root"}.Encode(), "root is configured as this node's parent but does not take it as a child", mux.ErrRejected},
		{"child is a root", mux.Hello{Version: mux.ProtoVersion, Role: mux.RoleRoot, Label: "relay2"}.Encode(), "relay2 is configured as this node's child but is a root", mux.ErrRejected},
		{"garbage", []byte("GET / HTTP/1.0\r\n\r\n"), `not a relay chain peer (magic "GET ")`, mux.ErrBadHello},
	}
	for _, tt := range raw {
		t.Run(tt.name, func(t *testing.T) {
			h, ok, reason := rawHello(t, addr, tt.msg)
			if ok || !strings.Contains(reason, tt.reason) {
				t.Fatalf("verdict ok=%v reason %q; want a refusal for %q", ok, reason, tt.reason)
			}
			if h.Label != "relay1" {
				t.Fatalf("the refusing hello says %q", h.Label)
			}
			rec := r1log.waitLog(t, tt.name, errorWith(tt.reason))
			if !errors.Is(rec.err(), tt.is) {
				t.Fatalf("logged error %v does not match %v", rec.err(), tt.is)
			}
		})
	}

	// Real nodes that relay1 refuses; each logs the refusal on its side.
	nodes := []struct {
		name   string
		cfg    mux.Config
		reason string
	}{
		{"unexpected label", mux.Config{Label: "stranger", Role: mux.RoleLeaf, Links: []mux.LinkConfig{{Peer: "relay1", Parent: true, Dial: addr}}},
			"unexpected label stranger"},
		{"duplicate label", mux.Config{Label: "relay2", Role: mux.RoleLeaf, Links: []mux.LinkConfig{{Peer: "relay1", Parent: true, Dial: addr}}},
			"duplicate label: relay2 is already connected"},
		{"both parents", mux.Config{Label: "relay2", Role: mux.RoleRoot, Links: []mux.LinkConfig{{Peer: "relay1", Dial: addr}}},
			"relay2 is configured as this node's child but takes this node as its child"},
	}
	for _, tt := range nodes {
		t.Run("node "+tt.name, func(t *testing.T) {
			tt.cfg.Tuning = tc.tun
			log, sink := captureLog(t)
			n := muxtest.StartNode(t, tt.cfg, muxtest.WithLog(log))
			rec := sink.waitLog(t, "the refusal on the refused node", errorWith(tt.reason))
			if !errors.Is(rec.err(), mux.ErrRefusedByPeer) {
				t.Fatalf("logged error %v does not match ErrRefusedByPeer", rec.err())
			}
			r1log.waitLog(t, "the refusal on relay1", errorWith(tt.reason))
			if got := n.Links(); len(got) != 0 {
				t.Fatalf("refused node has links %v", got)
			}
		})
	}

	// Nothing changed on relay1, and it serves on.
	if got := tc.r1.Links(); len(got) != 2 || got[0] != "relay2" || got[1] != "root" {
		t.Fatalf("relay1 links after the refusals: %v", got)
	}
	if _, ok := tc.r1.Routes()["stranger"]; ok {
		t.Fatal("a refused label was routed")
	}
	h, ok, _ := rawHello(t, addr, mux.Hello{Version: mux.ProtoVersion, Role: mux.RoleRelay, Label: "relay2"}.Encode())
	if ok || h.Label != "relay1" {
		t.Fatal("the listener stopped answering")
	}
	conn, err := tc.leaf.Open(context.Background(), "root", "echo")
	if err != nil {
		t.Fatal(err)
	}
	sent, got, n := roundTrip(t, conn, conn.CloseWrite, 100000, 4)
	conn.Close()
	if sent != got || n != 100000 {
		t.Fatal("echo through relay1 after the refusals failed")
	}
}

// TestHelloRefusedByDialer: the dialling side refuses a listener whose
// hello does not fit (another protocol version, a parent that does not take
// it as a child), tells it why, logs it at error level, and keeps trying.
func TestHelloRefusedByDialer(t *testing.T) {
	checkReleased(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	answers := []struct {
		h      mux.Hello
		reason string
		is     error
	}{
		{mux.Hello{Version: 9, Role: mux.RoleRelay, Parent: true, Label: "up"}, "speaks protocol version 9", mux.ErrVersion},
		{mux.Hello{Version: mux.ProtoVersion, Role: mux.RoleRelay, Label: "up"}, "up is configured as this node's parent but does not take it as a child", mux.ErrRejected},
		{mux.Hello{Version: mux.ProtoVersion, Role: mux.RoleRelay, Parent: true, Label: "other"}, "expected up, peer says it is other", mux.ErrRejected},
	}
	verdicts := make(chan string, len(answers))
	fakeDone := make(chan struct{})
	go func() {
		defer close(fakeDone)
		for _, a := range answers {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := mux.ReadHello(c); err == nil {
				_, _ = c.Write(append(a.h.Encode(), mux.EncodeVerdict("", true)...))
				if ok, reason, err := mux.ReadVerdict(c); err == nil && !ok {
					verdicts <- reason
				}
			}
			_ = c.Close()
		}
	}()
	defer func() {
		_ = ln.Close()
		<-fakeDone
	}()
	log, sink := captureLog(t)
	n := muxtest.StartNode(t, mux.Config{Label: "down", Role: mux.RoleLeaf, Tuning: muxtest.FastTuning(), Links: []mux.LinkConfig{
		{Peer: "up", Parent: true, Dial: ln.Addr().String()},
	}}, muxtest.WithLog(log))
	for _, a := range answers {
		select {
		case reason := <-verdicts:
			if !strings.Contains(reason, a.reason) {
				t.Fatalf("verdict reason %q, want %q", reason, a.reason)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no refusal for %q", a.reason)
		}
		rec := sink.waitLog(t, a.reason, errorWith(a.reason))
		if !errors.Is(rec.err(), a.is) {
			t.Fatalf("logged error %v does not match %v", rec.err(), a.is)
		}
	}
	if got := n.Links(); len(got) != 0 {
		t.Fatalf("links up after refusals: %v", got)
	}
}

// TestStartupOrderLeafFirst: the nodes start from the leaf upwards, each
// dialling a parent that is not there yet; the links and routes still
// form, and sessions work.
func TestStartupOrderLeafFirst(t *testing.T) {
	checkReleased(t)
	duplex := startTarget(t, serveDuplex)
	svc := map[string]mux.Service{"duplex": {Addrs: []string{duplex.addr()}}}
	tc := startTestChain(t, tchainOpts{leafFirst: true, chainOpts: chainOpts{rootServices: svc, leafServices: svc}})
	sessionsWork(t, tc.chain, "duplex")
	duplex.waitClosed(t, 2)
}

// holdServer reads a request to its end, then waits for release before it
// answers with the request's SHA-256 and reply bytes of a stream.
func holdServer(t testing.TB, reply int64, release <-chan struct{}) *target {
	t.Helper()
	return startTarget(t, func(c *net.TCPConn) {
		h := sha256.New()
		if _, err := io.Copy(h, c); err != nil {
			return
		}
		<-release
		if _, err := c.Write(h.Sum(nil)); err != nil {
			return
		}
		if _, err := io.CopyN(c, newTestStream(21), reply); err != nil {
			return
		}
		_ = c.CloseWrite()
	})
}

// TestShutdownDrains: Shutdown of relay1 with a session in flight stops
// new sessions through it at once, lets the one in flight finish within
// the grace period, and returns nil.
func TestShutdownDrains(t *testing.T) {
	checkReleased(t)
	release := make(chan struct{})
	const reply = 2 << 20
	srv := holdServer(t, reply, release)
	tc := startTestChain(t, tchainOpts{chainOpts: chainOpts{rootServices: map[string]mux.Service{"hold": {Addrs: []string{srv.addr()}}}}})
	conn, err := tc.leaf.Open(context.Background(), "root", "hold")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sent := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(conn, sent), newTestStream(20), 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := conn.CloseWrite(); err != nil {
		t.Fatal(err)
	}

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		shut <- tc.r1.Shutdown(ctx)
	}()
	// Once relay1 drains, a new session through it is refused by relay1.
	var se *mux.StatusError
	muxtest.WaitFor(t, 5*time.Second, "relay1 to refuse new sessions", func() bool {
		c2, err := tc.leaf.Open(context.Background(), "root", "hold")
		if err == nil {
			c2.Abort(nil)
			return false
		}
		return errors.As(err, &se) && se.Node == "relay1"
	})
	if !errors.Is(se, mux.ErrFailed) || !strings.Contains(se.Reason, mux.ErrShutdown.Error()) {
		t.Fatalf("open during the drain: %v", se)
	}
	select {
	case err := <-shut:
		t.Fatalf("shutdown returned (%v) with a session in flight", err)
	default:
	}

	close(release)
	got := make([]byte, 32+reply)
	if _, err := io.ReadFull(conn, got); err != nil {
		t.Fatalf("reply of the draining session: %v", err)
	}
	if !bytes.Equal(got[:32], sent.Sum(nil)) || !bytes.Equal(got[32:], streamPrefix(21, reply)) {
		t.Fatal("the draining session's bytes differ")
	}
	if n, err := conn.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("end of the draining session: %d, %v", n, err)
	}
	conn.Close()
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("shutdown after the drain: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("shutdown did not return once the session ended")
	}
	if err := tc.r1.Shutdown(context.Background()); err != nil {
		t.Fatalf("second shutdown: %v", err)
	}
	srv.waitClosed(t, 1)
}

func streamPrefix(seed uint64, n int) []byte {
	b := make([]byte, n)
	_, _ = io.ReadFull(newTestStream(seed), b)
	return b
}

// TestShutdownAbortsStuck: a session that does not end within a short
// grace period is aborted (reset at both ends, released everywhere), and
// Shutdown returns the context's error, again on a second call.
func TestShutdownAbortsStuck(t *testing.T) {
	checkReleased(t)
	srv, flows := flowTarget(t, false)
	ln := listenEntry(t)
	tc := startTestChain(t, tchainOpts{chainOpts: chainOpts{
		rootServices: map[string]mux.Service{"stuck": {Addrs: []string{srv.addr()}}},
		leafOpts:     []muxtest.Option{muxtest.WithEntry(ln, "stuck", "root", "stuck")},
	}})
	client := dialFlow(t, ln.Addr().String(), false, true)
	tgt := nextFlow(t, flows)
	open, err := tc.root.Open(context.Background(), "leaf", "nothing")
	if !errors.Is(err, mux.ErrDenied) || open != nil {
		t.Fatalf("open of a missing service: %v", err)
	}

	const grace = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	start := time.Now()
	err = tc.leaf.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shutdown with a stuck session: %v", err)
	}
	if d := time.Since(start); d < grace || d > grace+5*time.Second {
		t.Fatalf("shutdown took %s with a grace of %s", d, grace)
	}
	assertReset(t, client, 5*time.Second, "entry client")
	assertReset(t, tgt, 5*time.Second, "target")
	assertDrained(t, tc.nodes()...)
	if err2 := tc.leaf.Shutdown(context.Background()); err2 != err {
		t.Fatalf("second shutdown: %v, want %v", err2, err)
	}
	if _, err := tc.leaf.Open(context.Background(), "root", "stuck"); !errors.Is(err, mux.ErrFailed) {
		t.Fatalf("open after shutdown: %v", err)
	}
	srv.waitClosed(t, 1)
}

// TestConnCloseIdempotent: Close, CloseWrite and Abort may be called again
// and in any order; the session is released once.
func TestConnCloseIdempotent(t *testing.T) {
	checkReleased(t)
	echo := startEcho(t)
	c := startChain(t, chainOpts{rootServices: map[string]mux.Service{"echo": {Addrs: []string{echo.addr()}}}})
	conn, err := c.leaf.Open(context.Background(), "root", "echo")
	if err != nil {
		t.Fatal(err)
	}
	sent, got, _ := roundTrip(t, conn, conn.CloseWrite, 1000, 5)
	if sent != got {
		t.Fatal("echo mismatch")
	}
	for i := 0; i < 2; i++ {
		if err := conn.Close(); err != nil {
			t.Fatalf("close %d: %v", i, err)
		}
	}
	conn.Abort(nil)
	if err := conn.CloseWrite(); err != nil {
		t.Fatalf("close write after close: %v", err)
	}
	if _, err := conn.Write([]byte("x")); err == nil {
		t.Fatal("write after close succeeded")
	}
	assertDrained(t, c.nodes()...)

	// An abort, then closes.
	conn, err = c.leaf.Open(context.Background(), "root", "echo")
	if err != nil {
		t.Fatal(err)
	}
	conn.Abort(nil)
	conn.Abort(errors.New("again"))
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, mux.ErrAborted) {
		t.Fatalf("read after abort: %v", err)
	}
	assertDrained(t, c.nodes()...)
	muxtest.WaitFor(t, 5*time.Second, "the echo server's connections to close", func() bool { return echo.open.Load() == 0 })
}
