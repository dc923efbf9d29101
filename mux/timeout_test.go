package mux_test

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

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

// TestPeerWriteTimeout: a client that stops reading while the target keeps
// sending is cut after PeerWriteTimeout: the session is aborted at both
// ends (the target sees a reset, not a clean end) and released on every
// node, instead of holding its sockets for ever.
func TestPeerWriteTimeout(t *testing.T) {
	targetErr := make(chan error, 1)
	srv := startTarget(t, func(c *net.TCPConn) { // floods until its connection fails
		_, err := io.Copy(c, newTestStream(1))
		select {
		case targetErr <- err:
		default: // only the first connection is the test's
		}
	})

	tun := muxtest.FastTuning()
	tun.PeerWriteTimeout = time.Second
	entryLn := listenEntry(t)
	c := startChain(t, chainOpts{
		tuning:       tun,
		rootServices: map[string]mux.Service{"flood": {Addrs: []string{srv.addr()}}},
		leafOpts:     []muxtest.Option{muxtest.WithEntry(entryLn, "frozen", "root", "flood")},
	})
	client, err := net.Dial("tcp", entryLn.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	_ = client.(*net.TCPConn).SetReadBuffer(4096) // and never read

	select {
	case err := <-targetErr:
		if err == nil || !(errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)) {
			t.Fatalf("target's send ended with %v, want a reset", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the session was not cut: the target still sends")
	}
	assertDrained(t, c.nodes()...)
}
