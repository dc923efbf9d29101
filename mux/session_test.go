package mux_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

func TestSessionLeafToRootEcho(t *testing.T) {
	echo := startEcho(t)
	c := startChain(t, chainOpts{rootServices: map[string]mux.Service{"echo": {Addrs: []string{echo.addr()}}}})
	conn, err := c.leaf.Open(context.Background(), "root", "echo")
	if err != nil {
		t.Fatal(err)
	}
	sent, got, n := roundTrip(t, conn, conn.CloseWrite, 1<<20, 1)
	conn.Close()
	if sent != got || n != 1<<20 {
		t.Fatalf("echo mismatch: %d bytes", n)
	}
	assertDrained(t, c.nodes()...)
}

func TestHalfClose(t *testing.T) {
	hash := startHashServer(t, 100000)
	c := startChain(t, chainOpts{leafServices: map[string]mux.Service{"hash": {Addrs: []string{hash.addr()}}}})
	conn, err := c.root.Open(context.Background(), "leaf", "hash")
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(conn, h), newTestStream(3), 3<<20); err != nil {
		t.Fatal(err)
	}
	if err := conn.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	reply, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("read reply after half-close: %v", err)
	}
	if len(reply) != 32+100000 || !bytes.Equal(reply[:32], h.Sum(nil)) {
		t.Fatalf("reply: %d bytes, hash match %v", len(reply), bytes.Equal(reply[:32], h.Sum(nil)))
	}
	conn.Close()
	assertDrained(t, c.nodes()...)
}

// TestHalfCloseThroughEntry: a real TCP client of an entry sends, shuts
// its write side with CloseWrite, and still receives the whole reply, then
// a clean end.
func TestHalfCloseThroughEntry(t *testing.T) {
	checkReleased(t)
	hash := startHashServer(t, 100000)
	ln := listenEntry(t)
	c := startChain(t, chainOpts{
		leafServices: map[string]mux.Service{"hash": {Addrs: []string{hash.addr()}}},
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
	// Generous: the machine may be loaded; a lost end still fails.
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
	reply, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("read the reply after the half-close: %v", err)
	}
	if len(reply) != 32+100000 || !bytes.Equal(reply[:32], h.Sum(nil)) {
		t.Fatalf("reply: %d bytes, hash match %v", len(reply), len(reply) >= 32 && bytes.Equal(reply[:32], h.Sum(nil)))
	}
	want := make([]byte, 100000)
	_, _ = io.ReadFull(newTestStream(hashReplySeed), want)
	if !bytes.Equal(reply[32:], want) {
		t.Fatal("the reply stream differs from what the server sent")
	}
	conn.Close()
	assertDrained(t, c.nodes()...)
}

// greetResult is what a greetThenRead target received.
type greetResult struct {
	n    int64
	hash []byte
	err  error
}

// greetThenRead serves a target that half-closes first: it sends a
// greeting, shuts its write side, then reads and hashes everything the
// client sends until the client's end, and reports it.
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

// TestSlowReaderGetsEveryByte: a clean download whose reader drains the
// buffered tail slowly gets every byte and a clean end. (A stream close
// timer started by the end that finished first used to reset the stream
// under the slow reader and cut the tail.)
func TestSlowReaderGetsEveryByte(t *testing.T) {
	const size = 3 << 20
	srv := startTarget(t, func(c *net.TCPConn) {
		if _, err := io.Copy(io.Discard, c); err != nil {
			return
		}
		if _, err := io.CopyN(c, newTestStream(3), size); err != nil {
			return
		}
		_ = c.CloseWrite()
	})
	ln := listenEntry(t)
	tun := muxtest.FastTuning()
	tun.StreamCloseTimeout = 0 // the default
	c := startChain(t, chainOpts{
		tuning:       tun,
		leafServices: map[string]mux.Service{"dl": {Addrs: []string{srv.addr()}}},
		rootOpts:     []muxtest.Option{muxtest.WithEntry(ln, "dl", "leaf", "dl")},
	})
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn := nc.(*net.TCPConn)
	defer conn.Close()
	if _, err := conn.Write([]byte("GET")); err != nil {
		t.Fatal(err)
	}
	_ = conn.CloseWrite()
	// Read slowly for longer than a short stream close timeout would
	// allow: about 1.5 s for the whole tail.
	buf := make([]byte, 64<<10)
	total := 0
	for {
		n, err := conn.Read(buf)
		total += n
		if err != nil {
			if !errors.Is(err, io.EOF) || total != size {
				t.Fatalf("clean download ended after %d of %d bytes: %v", total, size, err)
			}
			break
		}
		time.Sleep(30 * time.Millisecond)
	}
	assertDrained(t, c.nodes()...)
}
