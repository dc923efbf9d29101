package mux_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

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
