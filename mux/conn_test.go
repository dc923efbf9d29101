package mux_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

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
