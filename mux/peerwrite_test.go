package mux_test

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// TestPeerWriteTimeout: a client that stops reading while the target keeps
// sending is cut after PeerWriteTimeout: the session is aborted at both
// ends (the target sees a reset, not a clean end) and released on every
// node, instead of holding its sockets for ever.
func TestPeerWriteTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	targetErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the target floods until its connection fails
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			targetErr <- err
			return
		}
		defer c.Close()
		_, err = io.Copy(c, newPattern(1))
		targetErr <- err
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})

	tun := muxtest.FastTuning()
	tun.PeerWriteTimeout = time.Second
	entryLn := listenEntry(t)
	c := startChain(t, chainOpts{
		tuning:       tun,
		rootServices: map[string]mux.Service{"flood": {Addrs: []string{ln.Addr().String()}}},
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
