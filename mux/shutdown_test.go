package mux_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

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
