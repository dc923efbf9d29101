package mux_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

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
		if _, err := io.CopyN(c, newPattern(3), size); err != nil {
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

// TestConnCloseDuringRead: Close does not wait for a Read blocked in
// another goroutine; it aborts, and the Read returns.
func TestConnCloseDuringRead(t *testing.T) {
	hold := make(chan struct{})
	c := startChain(t, chainOpts{leafServices: map[string]mux.Service{"h": {Handler: func(ctx context.Context, c *mux.Conn) {
		defer c.Close()
		select {
		case <-hold:
		case <-ctx.Done():
		}
	}}}})
	defer close(hold)
	conn, err := c.root.Open(context.Background(), "leaf", "h")
	if err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	go func() {
		var b [1]byte
		_, err := conn.Read(b[:])
		readErr <- err
	}()
	closed := make(chan struct{})
	go func() {
		conn.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Conn.Close blocked behind a pending Read")
	}
	select {
	case err := <-readErr:
		if !errors.Is(err, mux.ErrAborted) {
			t.Fatalf("pending Read returned %v, want an abort", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("pending Read did not return after Close")
	}
}

// TestShutdownDuringHello: a connection to a link port that never says
// hello does not hold Shutdown for the hello timeout.
func TestShutdownDuringHello(t *testing.T) {
	tun := muxtest.FastTuning()
	tun.HelloTimeout = 30 * time.Second
	n := muxtest.StartNode(t, mux.Config{Label: "r", Role: mux.RoleRoot, Tuning: tun, Links: []mux.LinkConfig{{Peer: "c", Listen: "127.0.0.1:0"}}})
	silent, err := net.Dial("tcp", n.LinkAddr("c").String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// A listener sends nothing before the peer's hello, so nothing tells
	// when the node has accepted: give it a moment (if it had not, the
	// test would pass without covering the hello; it cannot fail falsely).
	_ = silent.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	_, _ = silent.Read(make([]byte, 1))
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	start := time.Now()
	if err := n.Shutdown(sctx); err != nil {
		t.Fatalf("shutdown with a silent peer in its hello: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("shutdown took %s: it waited for the hello timeout", d)
	}
}
