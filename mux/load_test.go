package mux_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// streamBlock is the material of test streams: 1 MiB of fixed random bytes.
var streamBlock = func() []byte {
	b := make([]byte, 1<<20)
	_, _ = rand.NewChaCha8([32]byte{'r', 'e', 'l', 'a', 'y'}).Read(b)
	return b
}()

// testStream is a deterministic byte stream that costs a copy per read, so
// that even under the race detector producing it is not the bottleneck:
// streamBlock repeated, from an offset chosen by the seed.
type testStream struct{ off int }

func newTestStream(seed uint64) *testStream {
	return &testStream{off: int(seed*7919) % len(streamBlock)}
}

func (s *testStream) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m := copy(p[n:], streamBlock[s.off:])
		n += m
		s.off = (s.off + m) % len(streamBlock)
	}
	return n, nil
}

// streamHash is the SHA-256 of the first n bytes of the seed's stream.
func streamHash(seed uint64, n int64) []byte {
	h := sha256.New()
	_, _ = io.CopyN(h, newTestStream(seed), n)
	return h.Sum(nil)
}

// target is a TCP service for sessions to reach. It runs serve on every
// connection it accepts, in a goroutine of its own, then closes the
// connection; it counts the connections accepted and those still open.
// Its cleanup closes the listener and every connection and waits for the
// goroutines.
type target struct {
	ln       net.Listener
	accepted atomic.Int64
	open     atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[*net.TCPConn]struct{}
}

func startTarget(t testing.TB, serve func(c *net.TCPConn)) *target {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &target{ln: ln, conns: map[*net.TCPConn]struct{}{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			c := nc.(*net.TCPConn)
			s.accepted.Add(1)
			s.open.Add(1)
			s.mu.Lock()
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer s.open.Add(-1)
				serve(c)
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				_ = c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *target) addr() string { return s.ln.Addr().String() }

// waitClosed waits until every connection the target accepted is closed,
// and checks how many it accepted.
func (s *target) waitClosed(t testing.TB, accepted int64) {
	t.Helper()
	muxtest.WaitFor(t, 10*time.Second, "the target's connections to close", func() bool { return s.open.Load() == 0 })
	if got := s.accepted.Load(); got != accepted {
		t.Errorf("target accepted %d connections, want %d", got, accepted)
	}
}

// serveDuplex talks both ways at once. A connection starts with a 16-byte
// request: the size of the reply stream and its seed. The server sends
// that many bytes of the seed's stream while it hashes everything it
// receives; when both are done it appends the SHA-256 of what it received
// and half-closes. On a failure it resets the connection.
func serveDuplex(c *net.TCPConn) {
	var req [16]byte
	if _, err := io.ReadFull(c, req[:]); err != nil {
		return
	}
	down := int64(binary.BigEndian.Uint64(req[:8]))
	seed := binary.BigEndian.Uint64(req[8:])
	werr := make(chan error, 1)
	go func() {
		_, err := io.CopyN(c, newTestStream(seed), down)
		werr <- err
	}()
	h := sha256.New()
	_, rerr := io.Copy(h, c)
	if rerr != nil {
		_ = c.SetLinger(0)
		_ = c.Close() // unblocks the writer
	}
	if err := <-werr; err != nil || rerr != nil {
		_ = c.SetLinger(0)
		return
	}
	if _, err := c.Write(h.Sum(nil)); err != nil {
		return
	}
	_ = c.CloseWrite()
}

// exchange runs one serveDuplex session over conn: it asks for down bytes
// of the seed's stream while it sends up bytes of the stream seed+1,
// half-closes, and checks both directions by SHA-256 (the reply stream
// against the expected one, the server's hash against what was sent), then
// that the reply ends cleanly. abort unblocks the writer when the read side
// failed.
func exchange(conn io.ReadWriter, closeWrite, abort func() error, up, down int64, seed uint64) error {
	hsent := sha256.New()
	werrc := make(chan error, 1)
	go func() {
		var req [16]byte
		binary.BigEndian.PutUint64(req[:8], uint64(down))
		binary.BigEndian.PutUint64(req[8:], seed)
		if _, err := conn.Write(req[:]); err != nil {
			werrc <- fmt.Errorf("send request: %w", err)
			return
		}
		if n, err := io.CopyN(io.MultiWriter(conn, hsent), newTestStream(seed+1), up); err != nil {
			werrc <- fmt.Errorf("send: %d of %d bytes: %w", n, up, err)
			return
		}
		if err := closeWrite(); err != nil {
			werrc <- fmt.Errorf("half-close: %w", err)
			return
		}
		werrc <- nil
	}()
	var trailer [32]byte
	hgot := sha256.New()
	rerr := func() error {
		if n, err := io.CopyN(hgot, conn, down); err != nil {
			return fmt.Errorf("read reply: %d of %d bytes: %w", n, down, err)
		}
		if _, err := io.ReadFull(conn, trailer[:]); err != nil {
			return fmt.Errorf("read the server's hash: %w", err)
		}
		var one [1]byte
		if n, err := conn.Read(one[:]); n != 0 || err != io.EOF {
			return fmt.Errorf("after the reply: %d more bytes, error %v; want a clean end", n, err)
		}
		return nil
	}()
	if rerr != nil {
		_ = abort()
	}
	werr := <-werrc
	if err := errors.Join(rerr, werr); err != nil {
		return err
	}
	if !bytes.Equal(hgot.Sum(nil), streamHash(seed, down)) {
		return fmt.Errorf("the %d bytes received differ from what the server sent", down)
	}
	if !bytes.Equal(trailer[:], hsent.Sum(nil)) {
		return fmt.Errorf("the server received other bytes than the %d sent", up)
	}
	return nil
}

// openExchange runs exchange over a session opened with Node.Open.
func openExchange(ctx context.Context, from *mux.Node, dest, service string, up, down int64, seed uint64) error {
	conn, err := from.Open(ctx, dest, service)
	if err != nil {
		return fmt.Errorf("open %s/%s from %s: %w", dest, service, from.Label(), err)
	}
	defer conn.Close()
	if err := exchange(conn, conn.CloseWrite, conn.Close, up, down, seed); err != nil {
		return fmt.Errorf("session %s->%s: %w", from.Label(), dest, err)
	}
	return nil
}

// entryExchange runs exchange over a TCP connection to an entry listener.
func entryExchange(addr string, up, down int64, seed uint64) error {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	c := nc.(*net.TCPConn)
	defer c.Close()
	if err := exchange(c, c.CloseWrite, c.Close, up, down, seed); err != nil {
		return fmt.Errorf("entry %s: %w", addr, err)
	}
	return nil
}

// loadTuning is fastTuning with the link and stream timeouts of
// DefaultTuning. The load tests are about bytes, not about detecting dead
// links, and fastTuning's timeouts are too short for a link saturated both
// ways by a slow -race build on a loaded machine:
//   - a yamux keepalive answer queues behind the data in flight on its link
//     (the send queue and both sockets' buffers, several MiB on loopback),
//     so it can take more than a 1s write timeout, and the link would be
//     declared dead;
//   - once an end closed its stream, the peer must close within the stream
//     close timeout or yamux resets the stream, and the peer closes only
//     after it drained what is still in flight towards it, which with 200
//     sessions sharing a slow link can take longer than fastTuning's 5s;
//   - a session open (its SYN, header and status) queues behind the same
//     data on every hop, both ways: with 200 sessions opened at once, the
//     last opens wait for the first sessions' bytes, and on a loaded
//     2-core machine (another test binary beside this one) that took
//     longer than the default 15s ("no answer from relay2 within 15s" in
//     TestManyConcurrentSessions). The opens are bounded at 60s instead.
func loadTuning() mux.Tuning {
	t := muxtest.FastTuning()
	d := mux.DefaultTuning()
	t.KeepAliveInterval = d.KeepAliveInterval
	t.WriteTimeout = d.WriteTimeout
	t.OpenTimeout = 60 * time.Second
	t.StreamCloseTimeout = d.StreamCloseTimeout
	return t
}

// TestFullDuplexLargeTransfer carries a large stream both ways at once, in
// a session from the leaf to the root and one from the root to the leaf at
// the same time, and checks every byte by SHA-256.
func TestFullDuplexLargeTransfer(t *testing.T) {
	checkReleased(t)
	// 64 MiB each way in each session: 256 MiB through every hop. Under
	// -race on two CPUs this takes 7 to 15s, so the size is the same with
	// and without the race detector. MUX_TEST_DUPLEX_MIB overrides it.
	size := int64(64 << 20)
	if mib, err := strconv.ParseInt(os.Getenv("MUX_TEST_DUPLEX_MIB"), 10, 64); err == nil && mib >= 0 {
		size = mib << 20
	}
	srv := startTarget(t, serveDuplex)
	svc := map[string]mux.Service{"duplex": {Addrs: []string{srv.addr()}}}
	c := startChain(t, chainOpts{tuning: loadTuning(), rootServices: svc, leafServices: svc})
	ctx := context.Background()
	errc := make(chan error, 2)
	go func() { errc <- openExchange(ctx, c.leaf, "root", "duplex", size, size, 1) }()
	go func() { errc <- openExchange(ctx, c.root, "leaf", "duplex", size, size, 2) }()
	for i := 0; i < 2; i++ {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
	assertDrained(t, c.nodes()...)
	srv.waitClosed(t, 2)
}

// TestManyConcurrentSessions runs 200 sessions at once through the chain,
// of random sizes both ways, up and down, opened with Node.Open and by TCP
// clients of entry listeners on the leaf and on the root; every byte is
// checked.
func TestManyConcurrentSessions(t *testing.T) {
	checkReleased(t)
	const sessions = 200
	const maxSize = 1 << 20
	srv := startTarget(t, serveDuplex)
	svc := map[string]mux.Service{"duplex": {Addrs: []string{srv.addr()}}}
	rootEntry, leafEntry := listenEntry(t), listenEntry(t)
	c := startChain(t, chainOpts{
		tuning:       loadTuning(),
		rootServices: svc,
		leafServices: svc,
		rootOpts:     []muxtest.Option{muxtest.WithEntry(rootEntry, "down", "leaf", "duplex")},
		leafOpts:     []muxtest.Option{muxtest.WithEntry(leafEntry, "up", "root", "duplex")},
	})
	rng := rand.New(rand.NewPCG(1, 2))
	ctx := context.Background()
	errc := make(chan error, sessions)
	var wg sync.WaitGroup
	for i := 0; i < sessions; i++ {
		up, down := rng.Int64N(maxSize+1), rng.Int64N(maxSize+1)
		if i%50 == 0 {
			up = 0 // some sessions carry nothing one way
		}
		seed := uint64(1000 + 2*i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			switch i % 4 {
			case 0:
				err = openExchange(ctx, c.leaf, "root", "duplex", up, down, seed)
			case 1:
				err = openExchange(ctx, c.root, "leaf", "duplex", up, down, seed)
			case 2:
				err = entryExchange(leafEntry.Addr().String(), up, down, seed)
			case 3:
				err = entryExchange(rootEntry.Addr().String(), up, down, seed)
			}
			if err != nil {
				errc <- fmt.Errorf("session %d (%d up, %d down): %w", i, up, down, err)
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	assertDrained(t, c.nodes()...)
	srv.waitClosed(t, sessions)
}

// TestHalfCloseThroughEntry: a real TCP client of an entry sends, shuts
// its write side with CloseWrite, and still receives the whole reply, then
// a clean end.
func TestHalfCloseThroughEntry(t *testing.T) {
	checkReleased(t)
	hash := startHashServer(t, 100000)
	ln := listenEntry(t)
	c := startChain(t, chainOpts{
		leafServices: map[string]mux.Service{"hash": {Addrs: []string{hash}}},
		rootOpts:     []muxtest.Option{muxtest.WithEntry(ln, "hash", "leaf", "hash")},
	})
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn := nc.(*net.TCPConn)
	defer conn.Close()
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(conn, h), newTestStream(3), 3<<20); err != nil {
		t.Fatal(err)
	}
	if err := conn.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	reply, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("read the reply after the half-close: %v", err)
	}
	if len(reply) != 32+100000 || !bytes.Equal(reply[:32], h.Sum(nil)) {
		t.Fatalf("reply: %d bytes, hash match %v", len(reply), len(reply) >= 32 && bytes.Equal(reply[:32], h.Sum(nil)))
	}
	want := make([]byte, 100000)
	_, _ = io.ReadFull(newPattern(7), want)
	if !bytes.Equal(reply[32:], want) {
		t.Fatal("the reply stream differs from what the server sent")
	}
	conn.Close()
	assertDrained(t, c.nodes()...)
}

// greetThenRead is a target that half-closes first: it sends a greeting,
// shuts its write side, then reads and hashes everything the client sends
// until the client's end, and reports it.
type greetResult struct {
	n    int64
	hash []byte
	err  error
}

func greetThenRead(greeting int64, results chan<- greetResult) func(c *net.TCPConn) {
	return func(c *net.TCPConn) {
		if _, err := io.CopyN(c, newTestStream(5), greeting); err != nil {
			results <- greetResult{err: err}
			return
		}
		if err := c.CloseWrite(); err != nil {
			results <- greetResult{err: err}
			return
		}
		h := sha256.New()
		n, err := io.Copy(h, c)
		results <- greetResult{n: n, hash: h.Sum(nil), err: err}
	}
}

// TestHalfCloseTargetFirst: the target sends its greeting and half-closes
// first; the client reads the greeting to a clean end and then keeps
// sending, and the target receives all of it. Once with a TCP client of an
// entry, once with Node.Open.
func TestHalfCloseTargetFirst(t *testing.T) {
	checkReleased(t)
	const greeting, upload = 300000, 2 << 20
	results := make(chan greetResult, 2)
	srv := startTarget(t, greetThenRead(greeting, results))
	ln := listenEntry(t)
	c := startChain(t, chainOpts{
		rootServices: map[string]mux.Service{"greet": {Addrs: []string{srv.addr()}}},
		leafOpts:     []muxtest.Option{muxtest.WithEntry(ln, "greet", "root", "greet")},
	})

	check := func(t *testing.T, conn io.ReadWriter, closeWrite func() error) {
		t.Helper()
		h := sha256.New()
		if n, err := io.Copy(h, conn); err != nil || n != greeting {
			t.Fatalf("greeting: %d bytes, %v", n, err)
		}
		if !bytes.Equal(h.Sum(nil), streamHash(5, greeting)) {
			t.Fatal("greeting differs from what the target sent")
		}
		// The target's side is closed; ours goes on.
		sent := sha256.New()
		if _, err := io.CopyN(io.MultiWriter(conn, sent), newTestStream(6), upload); err != nil {
			t.Fatalf("send after the target's half-close: %v", err)
		}
		if err := closeWrite(); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-results:
			if r.err != nil || r.n != upload || !bytes.Equal(r.hash, sent.Sum(nil)) {
				t.Fatalf("target received %d bytes (%v), hash match %v", r.n, r.err, bytes.Equal(r.hash, sent.Sum(nil)))
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the target did not receive the client's end")
		}
		var one [1]byte
		if n, err := conn.Read(one[:]); n != 0 || err != io.EOF {
			t.Fatalf("after both ends: %d bytes, %v; want io.EOF", n, err)
		}
	}

	t.Run("entry", func(t *testing.T) {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn := nc.(*net.TCPConn)
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		check(t, conn, conn.CloseWrite)
	})
	t.Run("open", func(t *testing.T) {
		conn, err := c.leaf.Open(context.Background(), "root", "greet")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		check(t, conn, conn.CloseWrite)
	})
	assertDrained(t, c.nodes()...)
	srv.waitClosed(t, 2)
}

// TestFrozenReaderDoesNotBlockOthers: one session's client stops reading,
// so its sender is held by flow control on every hop; another session on
// the same links carries its data to completion meanwhile.
func TestFrozenReaderDoesNotBlockOthers(t *testing.T) {
	checkReleased(t)
	tun := loadTuning()
	tun.WindowSize = 256 << 10 // small windows: the frozen session fills them fast
	// When the frozen client resets, its entry aborts the stream, but the
	// relay next to it is blocked writing into that stream (its window is
	// full and nobody reads it any more); yamux's stream close timeout
	// (a reset after it) is what releases that relay. See the end.
	tun.StreamCloseTimeout = 2 * time.Second
	var pushed atomic.Int64
	frozenTarget := startTarget(t, func(c *net.TCPConn) {
		// Write until the connection fails; nobody reads the other end.
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Write(buf)
			pushed.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	srv := startTarget(t, serveDuplex)
	ln := listenEntry(t)
	c := startChain(t, chainOpts{
		tuning:       tun,
		rootServices: map[string]mux.Service{"duplex": {Addrs: []string{srv.addr()}}},
		leafServices: map[string]mux.Service{
			"firehose": {Addrs: []string{frozenTarget.addr()}},
			"duplex":   {Addrs: []string{srv.addr()}},
		},
		rootOpts: []muxtest.Option{muxtest.WithEntry(ln, "firehose", "leaf", "firehose")},
	})

	// The frozen client: connects through the entry and never reads.
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	frozen := nc.(*net.TCPConn)
	defer frozen.Close()
	// The target writes far more than the windows of the three hops and
	// the socket buffers hold, so it is held by flow control.
	muxtest.WaitFor(t, 10*time.Second, "the frozen session to fill its windows", func() bool {
		return pushed.Load() > 4*int64(tun.WindowSize)
	})

	// Meanwhile another session on the same links runs to completion, both
	// ways, in either direction through the chain.
	const size = 4 << 20
	errc := make(chan error, 2)
	go func() { errc <- openExchange(context.Background(), c.root, "leaf", "duplex", size, size, 11) }()
	go func() { errc <- openExchange(context.Background(), c.leaf, "root", "duplex", size, size, 12) }()
	for i := 0; i < 2; i++ {
		if err := <-errc; err != nil {
			t.Fatalf("session beside a frozen one: %v", err)
		}
	}
	held := pushed.Load()
	// The frozen session is still there, still held: its target has not
	// got far beyond what the windows and socket buffers hold.
	if got := c.leaf.Sessions(); got != 1 {
		t.Fatalf("leaf carries %d sessions, want the frozen one", got)
	}
	if held > 64<<20 {
		t.Fatalf("the frozen session's target pushed %d bytes: flow control did not hold it", held)
	}
	// Resetting the frozen client ends its session everywhere, within the
	// stream close timeout.
	_ = frozen.SetLinger(0)
	_ = frozen.Close()
	muxtest.WaitFor(t, tun.StreamCloseTimeout+5*time.Second, "the frozen session to be released everywhere", func() bool {
		for _, n := range c.nodes() {
			if n.Sessions() != 0 {
				return false
			}
		}
		return true
	})
	frozenTarget.waitClosed(t, 1)
	srv.waitClosed(t, 2)
}
