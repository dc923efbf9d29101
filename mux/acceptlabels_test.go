package mux_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// The labels a parent accepts from each child (LinkConfig.AcceptLabels):
// a child that claims another site's label is refused at every hop, with
// the reason in the refusing node's log, and the label's sessions keep
// going to the site.

// labelTree is root <- relay1 <- {gwp-b (a real leaf with the service
// "name"), evil (scripted)}. relay1 accepts evil and evil-sub from evil,
// only gwp-b from gwp-b; the root accepts gwp-* and evil from relay1.
type labelTree struct {
	root, relay1, b   *mux.Node
	rootCfg           mux.Config
	rootLog, relayLog *logSink
	evilAddr, bAddr   string
}

// nameService answers each session with label and a newline.
func nameService(label string) mux.Service {
	return mux.Service{Handler: func(_ context.Context, c *mux.Conn) {
		defer c.Close()
		_, _ = io.WriteString(c, label+"\n")
	}}
}

func startLabelTree(t *testing.T) *labelTree {
	t.Helper()
	tun := muxtest.FastTuning()
	lt := &labelTree{}
	rlog, rsink := captureLog(t)
	lt.relayLog = rsink
	lt.relay1 = muxtest.StartNode(t, mux.Config{Label: "relay1", Role: mux.RoleRelay, Tuning: tun, Links: []mux.LinkConfig{
		{Peer: "root", Parent: true, Listen: "127.0.0.1:0"},
		{Peer: "gwp-b", Listen: "127.0.0.1:0", AcceptLabels: []string{"gwp-b"}},
		{Peer: "evil", Listen: "127.0.0.1:0", AcceptLabels: []string{"evil-sub"}},
	}}, muxtest.WithLog(rlog))
	lt.evilAddr = lt.relay1.LinkAddr("evil").String()
	lt.bAddr = lt.relay1.LinkAddr("gwp-b").String()
	log, sink := captureLog(t)
	lt.rootLog = sink
	lt.rootCfg = muxtest.WithTLS(t, mux.Config{Label: "root", Role: mux.RoleRoot, Tuning: tun, Links: []mux.LinkConfig{
		{Peer: "relay1", Dial: lt.relay1.LinkAddr("root").String(), AcceptLabels: []string{"gwp-*", "evil"}},
	}})
	lt.root = muxtest.StartNode(t, lt.rootCfg, muxtest.WithLog(log))
	lt.b = lt.startB(t)
	return lt
}

// startB starts the site gwp-b below relay1 and waits for its route at
// the root.
func (lt *labelTree) startB(t *testing.T) *mux.Node {
	t.Helper()
	b := muxtest.StartNode(t, mux.Config{Label: "gwp-b", Role: mux.RoleLeaf, Tuning: muxtest.FastTuning(),
		Services: map[string]mux.Service{"name": nameService("gwp-b")},
		Links:    []mux.LinkConfig{{Peer: "relay1", Parent: true, Dial: lt.bAddr}}})
	muxtest.WaitFor(t, 10*time.Second, "gwp-b's route at the root", func() bool {
		return lt.root.Routes()["gwp-b"] == "relay1" && lt.relay1.Routes()["gwp-b"] == "gwp-b" && len(b.PathToRoot()) == 2
	})
	return b
}

// openName opens a session from the root to dest's service "name" and
// returns what it answered.
func openName(t *testing.T, from *mux.Node, dest string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := from.Open(ctx, dest, "name")
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return bufio.NewReader(c).ReadString('\n')
}

// TestChildClaimsLabelOutsideAcceptLabels: a scripted child (evil)
// announces a sibling's label (gwp-b). relay1 refuses it with the reason
// and counts it; when gwp-b's link drops and comes back, the label's
// route never moves to evil and a session to gwp-b reaches gwp-b; a
// session from evil with gwp-b as its origin is denied. The label evil
// may announce (evil-sub) is taken at relay1, and refused at the root,
// whose link to relay1 does not accept it.
func TestChildClaimsLabelOutsideAcceptLabels(t *testing.T) {
	checkReleased(t)
	lt := startLabelTree(t)
	evil := dialScripted(t, lt.evilAddr, "evil", mux.RoleLeaf, false)
	got := make(chan string, 4)
	go func() {
		for {
			st, err := evil.sess.AcceptStream()
			if err != nil {
				return
			}
			got <- "a session"
			_ = st.Close()
		}
	}()
	evil.send(mux.CtrlMsg{Type: mux.CtrlWhoReply, Labels: []string{"evil", "gwp-b", "evil-sub"},
		Nets: []mux.NetAd{{Owner: "gwp-b", Network: "127.0.2.0/24"}}})
	lt.relayLog.waitLog(t, "the refusal at relay1", lineWith(logrus.ErrorLevel,
		"refused label gwp-b announced by child evil: outside the link's accept_labels (evil,evil-sub)", "l:evil", "label:gwp-b"))
	lt.relayLog.waitLog(t, "the refusal of its network", lineWith(logrus.ErrorLevel,
		"refused network 127.0.2.0/24 of gwp-b announced by child evil: the link does not accept the label gwp-b"))
	muxtest.WaitFor(t, 10*time.Second, "evil-sub at relay1", func() bool { return lt.relay1.Routes()["evil-sub"] == "evil" })
	lt.rootLog.waitLog(t, "the refusal of evil-sub at the root", lineWith(logrus.ErrorLevel,
		"refused label evil-sub announced by child relay1: outside the link's accept_labels (relay1,gwp-*,evil)", "l:relay1"))
	if _, ok := lt.root.Routes()["evil-sub"]; ok {
		t.Fatal("the root routes evil-sub, which its link to relay1 does not accept")
	}
	if n := lt.relayLog.count(lineWith(logrus.WarnLevel, "told by both")); n != 0 {
		t.Fatalf("%d ties logged at relay1: the refused label made a tie", n)
	}
	if got := lt.relay1.Stats().RefusedLabels; got < 1 {
		t.Errorf("relay1 counted %d refused labels, want at least 1", got)
	}
	if got := lt.root.Stats().RefusedLabels; got < 1 {
		t.Errorf("the root counted %d refused labels, want at least 1", got)
	}
	if nets := fmt.Sprint(lt.relay1.Networks()); nets != "[]" {
		t.Errorf("relay1's networks: %s, want none", nets)
	}

	// gwp-b's link drops, and comes back: the route never goes to evil.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = lt.b.Shutdown(ctx)
	muxtest.WaitFor(t, 10*time.Second, "gwp-b's route gone", func() bool {
		_, ok := lt.relay1.Routes()["gwp-b"]
		return !ok
	})
	if _, err := openName(t, lt.root, "gwp-b"); err == nil {
		t.Fatal("a session to gwp-b opened while gwp-b was down")
	}
	lt.b = lt.startB(t)
	if name, err := openName(t, lt.root, "gwp-b"); err != nil || name != "gwp-b\n" {
		t.Fatalf("session to gwp-b: %q, %v", name, err)
	}
	select {
	case s := <-got:
		t.Fatalf("%s addressed to gwp-b reached evil", s)
	default:
	}

	// A session from evil in gwp-b's name is denied at relay1.
	if se := evil.open(mux.Header{ID: 1000, Hops: 32, Origin: "gwp-b", Dest: "gwp-b", Service: "name"}); se.Code != mux.StatusDenied {
		t.Fatalf("session from evil with origin gwp-b: %v, want denied", se)
	}
	if se := evil.open(mux.Header{ID: 1001, Hops: 32, Origin: "evil", Dest: "gwp-b", Service: "name"}); se.Code != mux.StatusOK {
		t.Fatalf("session from evil in its own name: %v, want ok", se)
	}
}

// TestAcceptedLabelsReconfigured widens what the root accepts from relay1
// while it serves: the label refused before is taken from relay1's next
// announcement (the root asks for it), and the link stays; narrowing it
// again drops the label at once.
func TestAcceptedLabelsReconfigured(t *testing.T) {
	checkReleased(t)
	lt := startLabelTree(t)
	evil := dialScripted(t, lt.evilAddr, "evil", mux.RoleLeaf, false)
	evil.send(mux.CtrlMsg{Type: mux.CtrlWhoReply, Labels: []string{"evil", "evil-sub"}})
	lt.rootLog.waitLog(t, "the refusal of evil-sub at the root", lineWith(logrus.ErrorLevel, "refused label evil-sub announced by child relay1"))
	before := lt.relay1.Stats().RefusedConnections

	next := lt.rootCfg
	next.Links = []mux.LinkConfig{lt.rootCfg.Links[0]}
	next.Links[0].AcceptLabels = []string{"gwp-*", "evil*"}
	changes, err := lt.root.Reconfigure(next, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"labels accepted from relay1 changed (gwp-*,evil*)"}; !slices.Equal(changes, want) {
		t.Fatalf("changes %q, want %q", changes, want)
	}
	muxtest.WaitFor(t, 10*time.Second, "evil-sub at the root", func() bool { return lt.root.Routes()["evil-sub"] == "relay1" })
	if name, err := openName(t, lt.root, "gwp-b"); err != nil || name != "gwp-b\n" {
		t.Fatalf("session to gwp-b after the change: %q, %v", name, err)
	}

	next.Links[0].AcceptLabels = []string{"gwp-*"}
	if _, err := lt.root.Reconfigure(next, time.Minute); err != nil {
		t.Fatal(err)
	}
	// evil went with the change itself, before any message.
	for _, l := range []string{"evil", "evil-sub"} {
		if _, ok := lt.root.Routes()[l]; ok {
			t.Fatalf("after narrowing, the root still routes %s", l)
		}
	}
	if lt.root.Routes()["gwp-b"] != "relay1" {
		t.Fatalf("after narrowing, the root routes %v", lt.root.Routes())
	}
	lt.rootLog.waitLog(t, "the drop", lineWith(logrus.WarnLevel, "dropped 2 labels of child relay1: outside its accept_labels now"))
	if got := lt.relay1.Stats().RefusedConnections; got != before {
		t.Fatalf("relay1 refused %d link connections during the changes: the link was replaced", got-before)
	}
}

// TestRouteMoveWarned: with two children that may both announce a label
// (a node below both), the move of its route from one to the other when
// the first link drops is logged at level 2.
func TestRouteMoveWarned(t *testing.T) {
	checkReleased(t)
	log, sink := captureLog(t)
	root := muxtest.StartNode(t, mux.Config{Label: "root", Role: mux.RoleRoot, Tuning: muxtest.FastTuning(), Links: []mux.LinkConfig{
		{Peer: "relay-a", Listen: "127.0.0.1:0"},
		{Peer: "relay-b", Listen: "127.0.0.1:0"},
	}}, muxtest.WithLog(log))
	a := dialScripted(t, root.LinkAddr("relay-a").String(), "relay-a", mux.RoleRelay, false)
	a.send(mux.CtrlMsg{Type: mux.CtrlWhoReply, Labels: []string{"relay-a", "gwp-x"}})
	muxtest.WaitFor(t, 10*time.Second, "gwp-x via relay-a", func() bool { return root.Routes()["gwp-x"] == "relay-a" })
	b := dialScripted(t, root.LinkAddr("relay-b").String(), "relay-b", mux.RoleRelay, false)
	b.send(mux.CtrlMsg{Type: mux.CtrlWhoReply, Labels: []string{"relay-b", "gwp-x"}})
	sink.waitLog(t, "the tie", lineWith(logrus.WarnLevel, "label gwp-x is told by both relay-a and relay-b; keeping relay-a"))
	_ = a.sess.Close()
	muxtest.WaitFor(t, 10*time.Second, "gwp-x via relay-b", func() bool { return root.Routes()["gwp-x"] == "relay-b" })
	sink.waitLog(t, "the move", lineWith(logrus.WarnLevel, "route to gwp-x moved from child relay-a to child relay-b, which tells it too", "l:relay-b", "label:gwp-x"))
}
