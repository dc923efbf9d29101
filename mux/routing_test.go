package mux_test

import (
	"context"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

func TestChainRoutesLearned(t *testing.T) {
	c := startChain(t, chainOpts{})
	if got := c.leaf.PathToRoot(); len(got) != 3 || got[0] != "relay2" || got[1] != "relay1" || got[2] != "root" {
		t.Fatalf("leaf path to root = %v", got)
	}
	if got := c.r2.PathToRoot(); len(got) != 2 || got[0] != "relay1" || got[1] != "root" {
		t.Fatalf("relay2 path to root = %v", got)
	}
	if got := len(c.root.Routes()); got != 3 {
		t.Fatalf("root routes = %v", c.root.Routes())
	}
}

// TestParentFailover: a leaf with two parents in priority order sends up
// through the first that is up, moves to the second when the first is
// lost, and returns to the first when it comes back; the root's route to
// the leaf follows, and sessions both ways work at every step.
func TestParentFailover(t *testing.T) {
	echo := startEcho(t)
	tun := muxtest.FastTuning()
	rootAddr := freeAddr(t)
	root := muxtest.StartNode(t, mux.Config{Label: "root", Role: mux.RoleRoot, Tuning: tun,
		Services: map[string]mux.Service{"echo": {Addrs: []string{echo.addr()}}},
		Links: []mux.LinkConfig{
			{Peer: "relay-a", Listen: rootAddr},
			{Peer: "relay-b", Listen: rootAddr},
		}})
	relayB := muxtest.StartNode(t, mux.Config{Label: "relay-b", Role: mux.RoleRelay, Tuning: tun, Links: []mux.LinkConfig{
		{Peer: "root", Parent: true, Dial: rootAddr},
		{Peer: "leaf", Listen: "127.0.0.1:0"},
	}})
	aAddr := freeAddr(t)
	relayACfg := mux.Config{Label: "relay-a", Role: mux.RoleRelay, Tuning: tun, Links: []mux.LinkConfig{
		{Peer: "root", Parent: true, Dial: rootAddr},
		{Peer: "leaf", Listen: aAddr},
	}}
	var stopA func()
	muxtest.StartNode(t, relayACfg, muxtest.WithStop(&stopA))
	leaf := muxtest.StartNode(t, mux.Config{Label: "leaf", Role: mux.RoleLeaf, Tuning: tun,
		Services: map[string]mux.Service{"echo": {Addrs: []string{echo.addr()}}},
		Links: []mux.LinkConfig{
			{Peer: "relay-a", Parent: true, Dial: aAddr},
			{Peer: "relay-b", Parent: true, Dial: relayB.LinkAddr("leaf").String()},
		}})

	// viaRoute waits until the leaf's sessions go up through its active
	// parent want and the root routes the leaf through route, and checks
	// sessions both ways. route "" accepts either relay.
	viaRoute := func(want, route string) {
		t.Helper()
		muxtest.WaitFor(t, 10*time.Second, "the leaf up via "+want+", the root down via "+route, func() bool {
			p := leaf.PathToRoot()
			r := root.Routes()["leaf"]
			return (r == route || route == "" && r != "") && len(p) == 2 && p[0] == want
		})
		for _, dir := range []struct {
			from *mux.Node
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
	// Both relays tell the root about the leaf: the route goes through the
	// one whose news came first ("": either).
	viaRoute("relay-a", "")
	stopA()
	viaRoute("relay-b", "relay-b")
	muxtest.StartNode(t, relayACfg)
	// The leaf goes back up through relay-a; the root keeps the route it
	// has (a label told by a second child never moves a route: the first
	// keeps it), and sessions work both ways.
	viaRoute("relay-a", "relay-b")
	assertDrained(t, root, relayB, leaf)
}

// TestStartupOrderLeafFirst: the nodes start from the leaf upwards, each
// dialling a parent that is not there yet; the links and routes still
// form, and sessions work.
func TestStartupOrderLeafFirst(t *testing.T) {
	checkReleased(t)
	duplex := startTarget(t, serveDuplex)
	svc := map[string]mux.Service{"duplex": {Addrs: []string{duplex.addr()}}}
	tc := startTestChain(t, tchainOpts{leafFirst: true, chainOpts: chainOpts{rootServices: svc, leafServices: svc}})
	sessionsWork(t, tc.chain, "duplex")
	duplex.waitClosed(t, 2)
}
