package mux

import (
	"context"
	"testing"
	"time"
)

// TestParentFailover: a leaf with two parents in priority order sends up
// through the first that is up, moves to the second when the first is
// lost, and returns to the first when it comes back; the root's route to
// the leaf follows, and sessions both ways work at every step.
func TestParentFailover(t *testing.T) {
	echo := startEcho(t)
	tun := fastTuning()
	rootAddr := freeAddr(t)
	root := startNode(t, Config{Label: "root", Role: RoleRoot, Tuning: tun,
		Services: map[string]Service{"echo": {Addrs: []string{echo.addr()}}},
		Links: []LinkConfig{
			{Peer: "relay-a", Listen: rootAddr},
			{Peer: "relay-b", Listen: rootAddr},
		}})
	relayB := startNode(t, Config{Label: "relay-b", Role: RoleRelay, Tuning: tun, Links: []LinkConfig{
		{Peer: "root", Parent: true, Dial: rootAddr},
		{Peer: "leaf", Listen: "127.0.0.1:0"},
	}})
	aAddr := freeAddr(t)
	relayACfg := Config{Label: "relay-a", Role: RoleRelay, Tuning: tun, Links: []LinkConfig{
		{Peer: "root", Parent: true, Dial: rootAddr},
		{Peer: "leaf", Listen: aAddr},
	}}
	relayA := startStoppable(t, relayACfg)
	leaf := startNode(t, Config{Label: "leaf", Role: RoleLeaf, Tuning: tun,
		Services: map[string]Service{"echo": {Addrs: []string{echo.addr()}}},
		Links: []LinkConfig{
			{Peer: "relay-a", Parent: true, Dial: aAddr},
			{Peer: "relay-b", Parent: true, Dial: relayB.LinkAddr("leaf").String()},
		}})

	via := func(want string) {
		t.Helper()
		waitFor(t, 10*time.Second, "the root to route the leaf via "+want, func() bool {
			p := leaf.PathToRoot()
			return root.Routes()["leaf"] == want && len(p) == 2 && p[0] == want
		})
		for _, dir := range []struct {
			from *Node
			dest string
		}{{leaf, "root"}, {root, "leaf"}} {
			c, err := dir.from.Open(context.Background(), dir.dest, "echo")
			if err != nil {
				t.Fatalf("via %s: open %s -> %s: %v", want, dir.from.Label(), dir.dest, err)
			}
			sent, got, n := roundTrip(t, c, c.CloseWrite, 256<<10, 5)
			c.Close()
			if sent != got || n != 256<<10 {
				t.Fatalf("via %s: echo mismatch (%d bytes)", want, n)
			}
		}
	}
	via("relay-a")
	relayA.stop()
	via("relay-b")
	startStoppable(t, relayACfg)
	via("relay-a")
	assertDrained(t, root, relayB, leaf)
}

// stoppable is a node a test stops before its end.
type stoppable struct {
	*Node
	stop func()
}

func startStoppable(t testing.TB, cfg Config) *stoppable {
	t.Helper()
	n, err := New(cfg, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = n.Serve(ctx)
	}()
	s := &stoppable{Node: n}
	stopped := false
	s.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-served
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = n.Shutdown(sctx)
	}
	t.Cleanup(s.stop)
	return s
}
