package mux_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// rvRoot is a root with a service "name", and two child links: gwp-a
// (the daemons' default: its own label only) and relay (gwp-*).
func rvRoot(t *testing.T, relayAccept []string) (*mux.Node, mux.Config) {
	t.Helper()
	cfg := mux.Config{Label: "root", Role: mux.RoleRoot, Tuning: muxtest.FastTuning(),
		Services: map[string]mux.Service{"name": nameService("root"), "echo": {Handler: func(_ context.Context, c *mux.Conn) {
			defer c.Close()
			_, _ = io.Copy(c, c)
		}}},
		Links: []mux.LinkConfig{
			{Peer: "gwp-a", Listen: "127.0.0.1:0", AcceptLabels: []string{"gwp-a"}},
			{Peer: "relay", Listen: "127.0.0.1:0", AcceptLabels: relayAccept},
		}}
	cfg = muxtest.WithTLS(t, cfg)
	return muxtest.StartNode(t, cfg), cfg
}

// TestSiblingLabelNotTakenByPattern: a relay whose link accepts gwp-*
// claims the own label of another direct child (gwp-a): refused, so it
// can neither open sessions in gwp-a's name nor take gwp-a's route when
// gwp-a's link drops; gwp-a's route comes back with its link.
func TestSiblingLabelNotTakenByPattern(t *testing.T) {
	root, _ := rvRoot(t, []string{"gwp-*"})
	a := dialScripted(t, root.LinkAddr("gwp-a").String(), "gwp-a", mux.RoleLeaf, false)
	a.send(mux.CtrlMsg{Type: mux.CtrlWhoReply, Labels: []string{"gwp-a"}})
	muxtest.WaitFor(t, 10*time.Second, "gwp-a", func() bool { return root.Routes()["gwp-a"] == "gwp-a" })
	r := dialScripted(t, root.LinkAddr("relay").String(), "relay", mux.RoleRelay, false)
	r.send(mux.CtrlMsg{Type: mux.CtrlWhoReply, Labels: []string{"relay", "gwp-a", "gwp-c"}})
	muxtest.WaitFor(t, 10*time.Second, "the relay's gwp-c", func() bool { return root.Routes()["gwp-c"] == "relay" })
	if se := r.open(mux.Header{ID: 1000, Hops: 32, Origin: "gwp-a", Dest: "root", Service: "name"}); se.Code != mux.StatusDenied {
		t.Errorf("the relay opened a session in gwp-a's name: status %v, want denied", se.Code)
	}
	_ = a.sess.Close()
	muxtest.WaitFor(t, 10*time.Second, "gwp-a's route gone with its link", func() bool { _, ok := root.Routes()["gwp-a"]; return !ok })
	a2 := dialScripted(t, root.LinkAddr("gwp-a").String(), "gwp-a", mux.RoleLeaf, false)
	a2.send(mux.CtrlMsg{Type: mux.CtrlWhoReply, Labels: []string{"gwp-a"}})
	muxtest.WaitFor(t, 10*time.Second, "gwp-a back through its own link", func() bool { return root.Routes()["gwp-a"] == "gwp-a" })
	if got := root.Stats().RefusedLabels; got < 1 {
		t.Errorf("RefusedLabels = %d, want the relay's claim counted", got)
	}
}

// TestOwnLinkTakesLabelBack: a diamond listed on purpose (the relay's link
// names gwp-a exactly): while gwp-a's own link is down the relay carries
// its route, and once gwp-a's link is back its own announcement takes the
// route back.
func TestOwnLinkTakesLabelBack(t *testing.T) {
	root, _ := rvRoot(t, []string{"gwp-a"})
	a := dialScripted(t, root.LinkAddr("gwp-a").String(), "gwp-a", mux.RoleLeaf, false)
	a.send(mux.CtrlMsg{Type: mux.CtrlWhoReply, Labels: []string{"gwp-a"}})
	muxtest.WaitFor(t, 10*time.Second, "gwp-a", func() bool { return root.Routes()["gwp-a"] == "gwp-a" })
	r := dialScripted(t, root.LinkAddr("relay").String(), "relay", mux.RoleRelay, false)
	r.send(mux.CtrlMsg{Type: mux.CtrlWhoReply, Labels: []string{"relay", "gwp-a"}})
	muxtest.WaitFor(t, 10*time.Second, "the relay", func() bool { return root.Routes()["relay"] == "relay" })
	_ = a.sess.Close()
	muxtest.WaitFor(t, 10*time.Second, "gwp-a through the relay", func() bool { return root.Routes()["gwp-a"] == "relay" })
	a2 := dialScripted(t, root.LinkAddr("gwp-a").String(), "gwp-a", mux.RoleLeaf, false)
	a2.send(mux.CtrlMsg{Type: mux.CtrlWhoReply, Labels: []string{"gwp-a"}})
	muxtest.WaitFor(t, 10*time.Second, "gwp-a through its own link again", func() bool { return root.Routes()["gwp-a"] == "gwp-a" })
}

// TestStarIsNotAPattern: "*" (or any pattern of wildcards only) beside
// other entries would accept every label: refused, as any must be the
// only entry.
func TestStarIsNotAPattern(t *testing.T) {
	for _, list := range [][]string{{"relay-sub", "*"}, {"?*"}} {
		cfg := mux.Config{Label: "root", Role: mux.RoleRoot, Links: []mux.LinkConfig{
			{Peer: "relay", Listen: "127.0.0.1:0", AcceptLabels: list}}}
		found := false
		for _, e := range cfg.Validate() {
			if strings.Contains(e.Error(), "matches every label") {
				found = true
			}
		}
		if !found {
			t.Errorf("accept labels %q: no error from Validate", list)
		}
	}
}
