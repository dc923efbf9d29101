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
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

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

// startEcho starts a target that writes back what it reads, then
// half-closes.
func startEcho(t testing.TB) *target {
	t.Helper()
	return startTarget(t, func(c *net.TCPConn) {
		_, _ = io.Copy(c, c)
		_ = c.CloseWrite()
		_, _ = io.Copy(io.Discard, c)
	})
}

// hashReplySeed is the seed of the stream that startHashServer answers.
const hashReplySeed = 7

// startHashServer starts a target that reads everything, answers with the
// SHA-256 of what it read followed by reply bytes of the stream of
// hashReplySeed, and half-closes.
func startHashServer(t testing.TB, reply int64) *target {
	t.Helper()
	return startTarget(t, func(c *net.TCPConn) {
		h := sha256.New()
		if _, err := io.Copy(h, c); err != nil {
			return
		}
		if _, err := c.Write(h.Sum(nil)); err != nil {
			return
		}
		_, _ = io.CopyN(c, newTestStream(hashReplySeed), reply)
		_ = c.CloseWrite()
	})
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
	_ = conn.SetDeadline(time.Now().Add(exchangeLimit))
	if err := exchange(conn, conn.CloseWrite, conn.Close, up, down, seed); err != nil {
		return fmt.Errorf("session %s->%s: %w", from.Label(), dest, err)
	}
	return nil
}

// exchangeLimit bounds one exchange of the load tests: a session stuck
// on a saturated machine fails with what it had done, rather than
// holding the test until the suite's own limit.
const exchangeLimit = 3 * time.Minute

// entryExchange runs exchange over a TCP connection to an entry listener.
func entryExchange(addr string, up, down int64, seed uint64) error {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	c := nc.(*net.TCPConn)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(exchangeLimit))
	if err := exchange(c, c.CloseWrite, c.Close, up, down, seed); err != nil {
		return fmt.Errorf("entry %s: %w", addr, err)
	}
	return nil
}

// roundTrip sends size bytes of the seed's stream through conn (a session)
// and then calls cw (its half-close), while it reads the reply to its end;
// it returns the SHA-256 of what was sent and of what came back, and how
// many bytes came back.
func roundTrip(t testing.TB, conn io.ReadWriter, cw func() error, size int64, seed uint64) (sent, got [32]byte, n int64) {
	t.Helper()
	hs := sha256.New()
	errc := make(chan error, 1)
	go func() {
		_, err := io.CopyN(io.MultiWriter(conn, hs), newTestStream(seed), size)
		if err == nil {
			err = cw()
		}
		errc <- err
	}()
	hr := sha256.New()
	n, err := io.Copy(hr, conn)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	copy(sent[:], hs.Sum(nil))
	copy(got[:], hr.Sum(nil))
	return sent, got, n
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

// streamPrefix is the first n bytes of the seed's stream.
func streamPrefix(seed uint64, n int) []byte {
	b := make([]byte, n)
	_, _ = io.ReadFull(newTestStream(seed), b)
	return b
}
