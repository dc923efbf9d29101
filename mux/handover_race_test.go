package mux_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// echoSession opens an echo session from n to dest and checks a short
// exchange.
func echoSession(n *mux.Node, dest string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := n.Open(ctx, dest, "echo")
	if err != nil {
		return fmt.Errorf("open %s/echo from %s: %w", dest, n.Label(), err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	msg := bytes.Repeat([]byte("x"), 1024)
	go func() {
		_, _ = c.Write(msg)
		_ = c.CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, msg) {
		return fmt.Errorf("echo %s->%s: %d of %d bytes, %v", n.Label(), dest, len(got), len(msg), err)
	}
	return nil
}

// TestHandOverOpensRacingDrain: sessions opened without pause, both ways,
// while a relay hands its place over: an open its parent or child chose
// for the predecessor's link just before the DRAIN, and sent after it,
// is served by the predecessor or sent again on the successor's link;
// none fails.
func TestHandOverOpensRacingDrain(t *testing.T) {
	checkReleased(t)
	tun := muxtest.FastTuning()
	echo := map[string]mux.Service{"echo": {Handler: echoHandler}}
	relayCfg := mux.Config{Label: "relay", Role: mux.RoleRelay, Tuning: tun, Links: []mux.LinkConfig{
		{Peer: "root", Parent: true, Listen: freeAddr(t)},
		{Peer: "leaf", Listen: freeAddr(t)},
	}}
	// A distance between the root and the relay: the opens the root
	// sends just before it answers the DRAIN are in flight together.
	far := muxtest.StartDelayProxy(t, relayCfg.Links[0].Listen, 5*time.Millisecond)
	root := muxtest.StartNode(t, mux.Config{Label: "root", Role: mux.RoleRoot, Tuning: tun, Services: echo,
		Links: []mux.LinkConfig{{Peer: "relay", Dial: far.Addr()}}})
	var stopOld func()
	old := muxtest.StartNode(t, relayCfg, muxtest.WithStop(&stopOld))
	leaf := muxtest.StartNode(t, mux.Config{Label: "leaf", Role: mux.RoleLeaf, Tuning: tun, Services: echo,
		Links: []mux.LinkConfig{{Peer: "relay", Parent: true, Dial: relayCfg.Links[1].Listen}}})
	muxtest.WaitFor(t, 10*time.Second, "the routes", func() bool {
		return root.Routes()["leaf"] == "relay" && len(leaf.PathToRoot()) == 2
	})

	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []error
		opened   atomic.Int64
	)
	for i := range 16 {
		from, dest := root, "leaf"
		if i%2 == 1 {
			from, dest = leaf, "root"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 20000 && !stop.Load(); k++ {
				if err := echoSession(from, dest); err != nil {
					mu.Lock()
					failures = append(failures, err)
					mu.Unlock()
				}
				opened.Add(1)
			}
		}()
	}

	files, err := old.HandOver()
	if err != nil {
		t.Fatalf("hand over: %v", err)
	}
	inherited := map[string]net.Listener{}
	for _, f := range files {
		ln, err := net.FileListener(f.File)
		_ = f.File.Close()
		if err != nil {
			t.Fatalf("listener from the file: %v", err)
		}
		inherited[f.Addr] = ln
	}
	succCfg := relayCfg
	succCfg.Inherited = inherited
	muxtest.StartNode(t, succCfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if left := old.Drain(ctx); left != 0 {
		t.Errorf("the predecessor drained with %d sessions left", left)
	}
	stopOld()
	// On through the successor alone for a while.
	for at := opened.Load(); opened.Load() < at+200; {
		time.Sleep(time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d sessions opened across the handover", opened.Load())
	for i, err := range failures {
		if i < 5 {
			t.Error(err)
		}
	}
	if len(failures) > 0 {
		t.Fatalf("%d of %d sessions failed", len(failures), opened.Load())
	}
}
