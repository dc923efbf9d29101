package mux_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// The attacks of a node whose certificate is valid but which lies (it was
// taken over, or is misconfigured), replayed with a scripted peer: each
// is refused, with the reason in the refusing node's log.

// lineWith matches a record at level whose message and fields, as text,
// hold every one of parts.
func lineWith(level logrus.Level, parts ...string) func(logRecord) bool {
	return func(r logRecord) bool {
		if r.Level != level {
			return false
		}
		text := r.Message + " " + fmt.Sprint(r.Data)
		for _, p := range parts {
			if !strings.Contains(text, p) {
				return false
			}
		}
		return true
	}
}

// count is how many records match accepts.
func (s *logSink) count(match func(logRecord) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.entries {
		if match(r) {
			n++
		}
	}
	return n
}

// distrustTree is root <- relay1 <- {gwp-a (a real leaf), evil (scripted)}.
type distrustTree struct {
	root, relay1, leaf *mux.Node
	rlog               *logSink // relay1's
	childAddr          string   // relay1's port for its children
}

func startDistrustTree(t *testing.T, tune func(*mux.Tuning)) *distrustTree {
	t.Helper()
	tun := muxtest.FastTuning()
	if tune != nil {
		tune(&tun)
	}
	echo := mux.Service{Handler: echoHandler}
	d := &distrustTree{}
	d.root = muxtest.StartNode(t, mux.Config{Label: "root", Role: mux.RoleRoot, Tuning: tun,
		Services: map[string]mux.Service{"echo": echo},
		Links:    []mux.LinkConfig{{Peer: "relay1", Listen: "127.0.0.1:0", AcceptNetworks: []string{mux.AnyNetwork}}}})
	var rlog *logrus.Entry
	rlog, d.rlog = captureLog(t)
	d.relay1 = muxtest.StartNode(t, mux.Config{Label: "relay1", Role: mux.RoleRelay, Tuning: tun, Links: []mux.LinkConfig{
		{Peer: "root", Parent: true, Dial: d.root.LinkAddr("relay1").String()},
		{Peer: "gwp-a", Listen: "127.0.0.1:0"},
		{Peer: "evil", Listen: "127.0.0.1:0", AcceptNetworks: []string{mux.AnyNetwork}},
	}}, muxtest.WithLog(rlog))
	d.childAddr = d.relay1.LinkAddr("gwp-a").String()
	d.leaf = muxtest.StartNode(t, mux.Config{Label: "gwp-a", Role: mux.RoleLeaf, Tuning: tun,
		Services: map[string]mux.Service{"echo": echo},
		Links:    []mux.LinkConfig{{Peer: "relay1", Parent: true, Dial: d.childAddr}}})
	muxtest.WaitFor(t, 10*time.Second, "the tree", func() bool {
		return d.root.Routes()["gwp-a"] == "relay1" && len(d.leaf.PathToRoot()) == 2
	})
	return d
}

// TestChildAnnouncesAncestors: a child that announces its parent's label,
// the root's, and a label routed through another child gets none of them;
// the refusal is logged with the child and the labels; sessions of the
// other site still go where they should.
func TestChildAnnouncesAncestors(t *testing.T) {
	checkReleased(t)
	d := startDistrustTree(t, nil)
	evil := dialScripted(t, d.childAddr, "evil", mux.RoleLeaf, false)
	evil.send(announce("evil", []string{"root", "relay1", "gwp-a", "ghost"})...)

	muxtest.WaitFor(t, 10*time.Second, "evil's own labels routed", func() bool {
		r := d.relay1.Routes()
		return r["evil"] == "evil" && r["ghost"] == "evil" && d.root.Routes()["ghost"] == "relay1"
	})
	r := d.relay1.Routes()
	for _, l := range []string{"root", "relay1"} {
		if via, ok := r[l]; ok {
			t.Errorf("relay1 routes %s via %s", l, via)
		}
	}
	if r["gwp-a"] != "gwp-a" {
		t.Errorf("gwp-a moved to %s", r["gwp-a"])
	}
	d.rlog.waitLog(t, "the refusal", lineWith(logrus.ErrorLevel, "refused 2 labels announced by child evil", "labels:relay1,root"))
	// gwp-a is the own label of another child link of relay1: no pattern
	// or any takes it, so evil's claim is refused, not a tie.
	d.rlog.waitLog(t, "the refusal of gwp-a", lineWith(logrus.ErrorLevel, "refused label gwp-a announced by child evil"))
	if n := d.rlog.count(lineWith(logrus.WarnLevel, "told by both")); n != 0 {
		t.Errorf("%d tie warnings about gwp-a, want none: the claim is refused", n)
	}

	// The other site's sessions go up to the root and down to gwp-a, not
	// to evil.
	echoThrough(t, d.leaf, "root")
	echoThrough(t, d.root, "gwp-a")
	if got := d.relay1.Stats().RefusedAnnouncements; got != 1 {
		t.Errorf("relay1 counted %d refused announcements, want 1", got)
	}
}

// TestForgedOriginFromChild: a child may open sessions only with an
// origin in its own subtree.
func TestForgedOriginFromChild(t *testing.T) {
	checkReleased(t)
	d := startDistrustTree(t, nil)
	evil := dialScripted(t, d.childAddr, "evil", mux.RoleLeaf, false)
	evil.send(announce("evil", []string{"ghost"})...)
	muxtest.WaitFor(t, 10*time.Second, "evil routed", func() bool { return d.root.Routes()["ghost"] == "relay1" })

	for i, tt := range []struct {
		origin string
		want   mux.Status
	}{
		{"gwp-a", mux.StatusDenied},  // another child's
		{"root", mux.StatusDenied},   // an ancestor's
		{"relay1", mux.StatusDenied}, // the parent's own
		{"evil", mux.StatusOK},
		{"ghost", mux.StatusOK}, // announced by evil: its subtree
	} {
		se := evil.open(mux.Header{ID: uint64(1000 + i), Hops: 32, Origin: tt.origin, Dest: "root", Service: "echo"})
		if se.Code != tt.want {
			t.Errorf("origin %s: %v, want %v", tt.origin, se, tt.want)
		}
		if tt.want == mux.StatusDenied && se.Node != "relay1" {
			t.Errorf("origin %s: denied at %s, want at relay1, the first hop", tt.origin, se.Node)
		}
	}
	d.rlog.waitLog(t, "the refusal", errorWith("origin gwp-a is not in the subtree of the child evil"))
	echoThrough(t, d.leaf, "root")
	if got := d.relay1.Stats().ForgedOrigins; got != 3 {
		t.Errorf("relay1 counted %d forged origins, want 3", got)
	}
}

// TestSessionCaps: a node refuses sessions over its caps per link and per
// origin, and takes them again once sessions end.
func TestSessionCaps(t *testing.T) {
	checkReleased(t)
	for _, tt := range []struct {
		name string
		tune func(*mux.Tuning)
		at   string // the node that refuses: the first the cap applies on
		want string
	}{
		{"per link", func(t *mux.Tuning) { t.MaxSessionsPerLink = 2 }, "relay1", "session limit of 2 through the link to gwp-a reached"},
		{"per origin", func(t *mux.Tuning) { t.MaxSessionsPerOrigin = 2 }, "gwp-a", "session limit of 2 for origin gwp-a reached"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := startDistrustTree(t, tt.tune)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var held []*mux.Conn
			for i := 0; i < 2; i++ {
				c, err := d.leaf.Open(ctx, "root", "echo")
				if err != nil {
					t.Fatalf("session %d: %v", i, err)
				}
				held = append(held, c)
			}
			_, err := d.leaf.Open(ctx, "root", "echo")
			var se *mux.StatusError
			if !errors.As(err, &se) || se.Code != mux.StatusFailed || se.Node != tt.at || !strings.Contains(se.Reason, tt.want) {
				t.Fatalf("third session: %v; want failed at %s: %s", err, tt.at, tt.want)
			}
			for _, c := range held {
				_ = c.Close()
			}
			muxtest.WaitFor(t, 10*time.Second, "the sessions released", func() bool { return d.relay1.Sessions() == 0 })
			echoThrough(t, d.leaf, "root")
		})
	}
}

// TestForgedOriginFromParent: a session that comes down from a parent may
// not claim to come from below.
func TestForgedOriginFromParent(t *testing.T) {
	checkReleased(t)
	tun := muxtest.FastTuning()
	log, sink := captureLog(t)
	r := muxtest.StartNode(t, mux.Config{Label: "r", Role: mux.RoleRelay, Tuning: tun, Links: []mux.LinkConfig{
		{Peer: "up", Parent: true, Listen: "127.0.0.1:0"},
		{Peer: "gwp-x", Listen: "127.0.0.1:0"},
	}}, muxtest.WithLog(log))
	leaf := muxtest.StartNode(t, mux.Config{Label: "gwp-x", Role: mux.RoleLeaf, Tuning: tun,
		Services: map[string]mux.Service{"echo": {Handler: echoHandler}},
		Links:    []mux.LinkConfig{{Peer: "r", Parent: true, Dial: r.LinkAddr("gwp-x").String()}}})
	_ = leaf
	muxtest.WaitFor(t, 10*time.Second, "gwp-x routed", func() bool { return r.Routes()["gwp-x"] == "gwp-x" })
	up := dialScripted(t, r.LinkAddr("up").String(), "up", mux.RoleRoot, true)

	for i, tt := range []struct {
		origin string
		want   mux.Status
	}{
		{"gwp-x", mux.StatusDenied},
		{"r", mux.StatusDenied},
		{"up", mux.StatusOK},
	} {
		se := up.open(mux.Header{ID: uint64(2000 + i), Hops: 32, Origin: tt.origin, Dest: "gwp-x", Service: "echo"})
		if se.Code != tt.want {
			t.Errorf("origin %s: %v, want %v", tt.origin, se, tt.want)
		}
	}
	sink.waitLog(t, "the refusal", errorWith("origin gwp-x is in the subtree of r, but the session came from its parent up"))
}

// TestAnnouncementOverCap: an announcement over the labels one link may
// hold is refused whole and logged once; the table stays as it was.
func TestAnnouncementOverCap(t *testing.T) {
	checkReleased(t)
	d := startDistrustTree(t, func(t *mux.Tuning) { t.MaxLabelsPerLink = 100 })
	before := len(d.root.Routes())
	evil := dialScripted(t, d.childAddr, "evil", mux.RoleLeaf, false)
	labels := make([]string, 150)
	for i := range labels {
		labels[i] = fmt.Sprintf("ep-%04d", i)
	}
	evil.send(announce("evil", labels)...)
	d.rlog.waitLog(t, "the refusal", errorWith("151 labels through one link, at most 100"))
	// Again, and as deltas: still refused, not logged again.
	evil.send(mux.CtrlMsg{Type: mux.CtrlTell, Labels: append([]string{"evil"}, labels...)})
	evil.send(mux.CtrlMsg{Type: mux.CtrlDelta, Seq: 1, Labels: labels[:10]})
	echoThrough(t, d.leaf, "root") // the link is served in order: the refusals are behind us
	if n := d.rlog.count(errorWith("through one link")); n != 1 {
		t.Errorf("the refusal was logged %d times, want once", n)
	}
	if got := len(d.root.Routes()); got != before {
		t.Errorf("the root has %d routes, had %d", got, before)
	}
	if _, ok := d.relay1.Routes()["ep-0000"]; ok {
		t.Error("a label of the refused announcement was routed")
	}
	// The refused child was asked for its whole announcement again when
	// its delta came (besides the WHO on connect).
	whos := func() int {
		evil.mu.Lock()
		defer evil.mu.Unlock()
		n := 0
		for _, m := range evil.received {
			if m.Type == mux.CtrlWho {
				n++
			}
		}
		return n
	}
	muxtest.WaitFor(t, 10*time.Second, "a second WHO to the refused child", func() bool { return whos() >= 2 })
	// Within the cap it is taken again.
	evil.send(announce("evil", labels[:50])...)
	muxtest.WaitFor(t, 10*time.Second, "the announcement within the cap", func() bool { return d.root.Routes()["ep-0049"] == "relay1" })
}

// TestLabelFloodDoesNotFloodLog: 20,000 labels announced at once reach the
// root, and the nodes log a few lines about it at level 3, not one per
// label per hop.
func TestLabelFloodDoesNotFloodLog(t *testing.T) {
	checkReleased(t)
	tun := muxtest.FastTuning()
	tun.MaxLabelsPerLink = 30000
	log, sink := captureLog(t)
	root := muxtest.StartNode(t, mux.Config{Label: "root", Role: mux.RoleRoot, Tuning: tun,
		Links: []mux.LinkConfig{{Peer: "relay1", Listen: "127.0.0.1:0"}}}, muxtest.WithLog(log))
	relay := muxtest.StartNode(t, mux.Config{Label: "relay1", Role: mux.RoleRelay, Tuning: tun, Links: []mux.LinkConfig{
		{Peer: "root", Parent: true, Dial: root.LinkAddr("relay1").String()},
		{Peer: "evil", Listen: "127.0.0.1:0"},
	}}, muxtest.WithLog(log))
	muxtest.WaitFor(t, 10*time.Second, "relay1 linked", func() bool { return len(relay.PathToRoot()) == 1 })
	evil := dialScripted(t, relay.LinkAddr("evil").String(), "evil", mux.RoleLeaf, false)
	labels := make([]string, 20000)
	for i := range labels {
		labels[i] = fmt.Sprintf("flood-%05d", i)
	}
	evil.send(announce("evil", labels)...)
	muxtest.WaitFor(t, 20*time.Second, "20,000 routes at the root", func() bool { return len(root.Routes()) == 20002 })

	// What a node at the default level 3 writes: every record at info
	// level and above, as text.
	bytes := 0
	sink.mu.Lock()
	for _, r := range sink.entries {
		if r.Level <= logrus.InfoLevel {
			bytes += len(r.Message) + len(fmt.Sprint(r.Data)) + 20
		}
	}
	sink.mu.Unlock()
	t.Logf("two nodes logged %d bytes at level 3 for 20,000 labels", bytes)
	if bytes > 16<<10 {
		t.Fatalf("two nodes logged %d bytes at level 3 for 20,000 labels: one line per label?", bytes)
	}
}

// TestIdleConnectionFlood: 2,000 connections that never say a word hold
// at most the hello caps on the node (the rest are closed at once), are
// summed up in the log rather than logged one by one, and the sessions of
// the links that are up go on.
func TestIdleConnectionFlood(t *testing.T) {
	checkReleased(t)
	tun := muxtest.FastTuning()
	tun.RefusalLogBurst = 5
	tun.HelloTimeout = 3 * time.Second
	// The caps alone: without the handshake rate, which would leave most
	// of the flood waiting in the listen queue (TestReconnectStorm).
	tun.MaxHandshakeRate, tun.HandshakeBurst = 1e9, 1<<30
	log, sink := captureLog(t)
	root := muxtest.StartNode(t, mux.Config{Label: "root", Role: mux.RoleRoot, Tuning: tun,
		Services: map[string]mux.Service{"echo": {Handler: echoHandler}},
		Links:    []mux.LinkConfig{{Peer: "gwp-a", Listen: "127.0.0.1:0"}}}, muxtest.WithLog(log))
	leaf := muxtest.StartNode(t, mux.Config{Label: "gwp-a", Role: mux.RoleLeaf, Tuning: tun,
		Links: []mux.LinkConfig{{Peer: "root", Parent: true, Dial: root.LinkAddr("gwp-a").String()}}})
	muxtest.WaitFor(t, 10*time.Second, "the link", func() bool { return root.Routes()["gwp-a"] == "gwp-a" })
	addr := root.LinkAddr("gwp-a").String()

	// From 20 source addresses, 100 each.
	const sources, each = 20, 100
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for s := 0; s < sources; s++ {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(s+1))}, Timeout: 5 * time.Second}
		for i := 0; i < each; i++ {
			c, err := d.Dial("tcp", addr)
			if err != nil {
				t.Fatalf("flood connection %d from source %d: %v", i, s, err)
			}
			conns = append(conns, c)
		}
	}
	// The node closes at once what is over its caps; the rest it holds
	// for the hello timeout at most.
	pending := conns
	muxtest.WaitFor(t, 5*time.Second, "the node to close what is over its hello caps", func() bool {
		var still []net.Conn
		for _, c := range pending {
			_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
			if _, err := c.Read(make([]byte, 1)); isTimeout(err) {
				still = append(still, c)
			}
		}
		pending = still
		return len(pending) <= tun.MaxHellos
	})
	held := len(pending)
	t.Logf("%d of %d idle connections held by the node", held, len(conns))
	if held > tun.MaxHellos {
		t.Fatalf("the node holds %d idle connections, more than max_hellos %d", held, tun.MaxHellos)
	}
	if held == 0 {
		t.Fatal("the node held no connection: the test measured nothing")
	}
	if got := root.Stats().RefusedConnections; got < uint64(len(conns)-tun.MaxHellos) {
		t.Errorf("the node counted %d refused connections, want at least %d", got, len(conns)-tun.MaxHellos)
	}
	// The link that is up carries sessions meanwhile.
	echoThrough(t, leaf, "root")

	// The log: a few lines in full, the rest in a summary when the node
	// stops accepting (or the minute ends), not 2,000 lines.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = root.Shutdown(ctx)
	lines := sink.count(func(r logRecord) bool { return r.Level == logrus.ErrorLevel && r.Data["component"] == "link" })
	if lines > tun.RefusalLogBurst+1 {
		t.Errorf("%d error lines about link connections for a flood of %d", lines, len(conns))
	}
	sink.waitLog(t, "the summary", lineWith(logrus.ErrorLevel, "more link connections refused", "not logged one by one", "127.0.1."))
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
