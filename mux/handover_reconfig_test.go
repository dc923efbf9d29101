package mux_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// TestHandOverDuringReconfigDrain: a relay whose link to leaf-b was just
// removed by a live reconfiguration, and still drains a session down to
// leaf-b on it, hands its place over to a successor with the new
// configuration. The session on the removed link goes on moving bytes
// through the predecessor and ends cleanly; leaf-a and the root move to
// the successor, with new sessions both ways throughout; only the
// remaining link's socket is handed over; the predecessor drains with no
// session left and aborts none.
func TestHandOverDuringReconfigDrain(t *testing.T) {
	checkReleased(t)
	tun := muxtest.FastTuning()
	echo := map[string]mux.Service{"echo": {Handler: echoHandler}}
	root := muxtest.StartNode(t, mux.Config{Label: "root", Role: mux.RoleRoot, Tuning: tun, Services: echo,
		Links: []mux.LinkConfig{{Peer: "relay", Listen: "127.0.0.1:0"}}})
	relayCfg := muxtest.WithTLS(t, mux.Config{Label: "relay", Role: mux.RoleRelay, Tuning: tun, Links: []mux.LinkConfig{
		{Peer: "root", Parent: true, Dial: root.LinkAddr("relay").String()},
		{Peer: "leaf-a", Listen: freeAddr(t)},
		{Peer: "leaf-b", Listen: freeAddr(t)},
	}})
	var stopOld func()
	oldLog, oldSink := captureLog(t)
	oldLog.Logger.SetLevel(logrus.InfoLevel)
	old := muxtest.StartNode(t, relayCfg, muxtest.WithStop(&stopOld), muxtest.WithLog(oldLog))
	answered := func(peer string) bool {
		_, ok := oldSink.find(func(r logRecord) bool { return r.Message == "DRAIN reply command received" && r.Data["l"] == peer })
		return ok
	}
	leafA := muxtest.StartNode(t, mux.Config{Label: "leaf-a", Role: mux.RoleLeaf, Tuning: tun, Services: echo,
		Links: []mux.LinkConfig{{Peer: "relay", Parent: true, Dial: relayCfg.Links[1].Listen}}})
	muxtest.StartNode(t, mux.Config{Label: "leaf-b", Role: mux.RoleLeaf, Tuning: tun, Services: echo,
		Links: []mux.LinkConfig{{Peer: "relay", Parent: true, Dial: relayCfg.Links[2].Listen}}})
	muxtest.WaitFor(t, 10*time.Second, "the routes", func() bool {
		r := root.Routes()
		return r["leaf-a"] == "relay" && r["leaf-b"] == "relay"
	})
	toB, fromA := openLongEcho(t, root, "leaf-b"), openLongEcho(t, leafA, "root")
	toB.roundTrip(t)
	fromA.roundTrip(t)

	// leaf-b's link goes; its session drains on it for up to a minute.
	newCfg := relayCfg
	newCfg.Links = relayCfg.Links[:2]
	changes, err := old.Reconfigure(newCfg, time.Minute)
	if err != nil {
		t.Fatalf("reconfigure: %v", err)
	}
	t.Logf("reconfigured: %v", changes)
	toB.roundTrip(t)

	files, err := old.HandOver()
	if err != nil {
		t.Fatalf("hand over during the drain: %v", err)
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
	if len(inherited) != 1 || inherited[relayCfg.Links[1].Listen] == nil {
		t.Fatalf("handed over %v, want leaf-a's listening socket alone", files)
	}
	succCfg := newCfg
	succCfg.Inherited = inherited
	succ := muxtest.StartNode(t, succCfg)

	drained := make(chan int, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		drained <- old.Drain(ctx)
	}()
	opened := 0
	for i := 0; !answered("leaf-a") || !answered("root"); i++ {
		echoThrough(t, leafA, "root")
		echoThrough(t, root, "leaf-a")
		opened += 2
		if i%10 == 0 {
			toB.roundTrip(t)
			fromA.roundTrip(t)
		}
		if i > 2000 {
			t.Fatalf("the successor has links %v after %d sessions", succ.Links(), opened)
		}
	}
	t.Logf("%d new sessions through the handover", opened)
	if got := succ.Links(); len(got) != 2 {
		t.Fatalf("the successor links to %v, want the root and leaf-a", got)
	}
	// The session on the removed link, and the one through leaf-a's old
	// link, finish through the predecessor.
	toB.roundTrip(t)
	fromA.roundTrip(t)
	toB.end(t)
	fromA.end(t)
	select {
	case left := <-drained:
		if left != 0 {
			t.Fatalf("the predecessor drained with %d sessions left", left)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the predecessor did not drain")
	}
	if r, ok := oldSink.find(func(r logRecord) bool { return strings.Contains(r.Message, "aborting") }); ok {
		t.Fatalf("the predecessor aborted sessions: %s", r.Message)
	}
	stopOld()
	muxtest.WaitFor(t, 10*time.Second, "the root linked to the successor only, leaf-b gone", func() bool {
		r := root.Routes()
		_, b := r["leaf-b"]
		return len(root.Links()) == 1 && r["leaf-a"] == "relay" && !b
	})
	echoThrough(t, leafA, "root")
	echoThrough(t, root, "leaf-a")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c, err := root.Open(ctx, "leaf-b", "echo"); err == nil {
		_ = c.Close()
		t.Fatal("a session to leaf-b opened after its link was removed")
	}
}
