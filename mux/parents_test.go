package mux_test

import (
	"context"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// twoParents is a root, two relays below it and a leaf below both, whose
// links to the relays go through delaying proxies.
type twoParents struct {
	root, a, b, leaf *mux.Node
	pa, pb           *muxtest.DelayProxy
	fwdA, fwdB       *atomic.Int64 // sessions each relay forwarded
	leafLog          *logSink
	leafCfg          mux.Config
}

// countForwarded is a logger that writes nothing and counts the sessions
// a node forwarded.
func countForwarded() (*logrus.Entry, *atomic.Int64) {
	lg := logrus.New()
	lg.SetOutput(io.Discard)
	lg.SetLevel(logrus.InfoLevel)
	n := &atomic.Int64{}
	lg.AddHook(forwardHook{n})
	return logrus.NewEntry(lg), n
}

type forwardHook struct{ n *atomic.Int64 }

func (h forwardHook) Levels() []logrus.Level { return []logrus.Level{logrus.InfoLevel} }
func (h forwardHook) Fire(e *logrus.Entry) error {
	if e.Message == "forwarded" {
		h.n.Add(1)
	}
	return nil
}

// startTwoParents starts the tree; delayA and delayB are the one-way
// delays of the leaf's links to relay-a and relay-b, pol and the weights
// the leaf's parent selection.
func startTwoParents(t *testing.T, delayA, delayB time.Duration, pol mux.ParentPolicy, weightA, weightB int) *twoParents {
	t.Helper()
	tun := muxtest.FastTuning()
	// A machine loaded by other builds can hold a keepalive's answer
	// back for over a second; these tests cut links themselves.
	tun.WriteTimeout = 5 * time.Second
	rootAddr := freeAddr(t)
	tp := &twoParents{}
	tp.root = muxtest.StartNode(t, mux.Config{Label: "root", Role: mux.RoleRoot, Tuning: tun,
		Services: map[string]mux.Service{
			"sink": {Handler: func(_ context.Context, c *mux.Conn) { _ = c.Close() }},
			// hold keeps a session until the other end ends it.
			"hold": {Handler: func(_ context.Context, c *mux.Conn) { _, _ = io.Copy(io.Discard, c); _ = c.Close() }},
		},
		Links: []mux.LinkConfig{
			{Peer: "relay-a", Listen: rootAddr, AcceptNetworks: []string{"127.0.1.0/24"}},
			{Peer: "relay-b", Listen: rootAddr, AcceptNetworks: []string{"127.0.1.0/24"}},
		}})
	relay := func(label string) (*mux.Node, *atomic.Int64) {
		log, n := countForwarded()
		return muxtest.StartNode(t, mux.Config{Label: label, Role: mux.RoleRelay, Tuning: tun, Links: []mux.LinkConfig{
			{Peer: "root", Parent: true, Dial: rootAddr},
			{Peer: "leaf", Listen: "127.0.0.1:0", AcceptNetworks: []string{"127.0.1.0/24"}},
		}}, muxtest.WithLog(log)), n
	}
	tp.a, tp.fwdA = relay("relay-a")
	tp.b, tp.fwdB = relay("relay-b")
	tp.pa = muxtest.StartDelayProxy(t, tp.a.LinkAddr("leaf").String(), delayA)
	tp.pb = muxtest.StartDelayProxy(t, tp.b.LinkAddr("leaf").String(), delayB)
	log, sink := captureLog(t)
	log.Logger.SetLevel(logrus.InfoLevel)
	log.Logger.SetOutput(io.Discard)
	tp.leafLog = sink
	tp.leafCfg = muxtest.WithTLS(t, mux.Config{Label: "leaf", Role: mux.RoleLeaf, Tuning: tun, Parents: pol, Serves: []string{"127.0.1.0/24"},
		Services: map[string]mux.Service{"sink": {Handler: func(_ context.Context, c *mux.Conn) { _ = c.Close() }}},
		Links: []mux.LinkConfig{
			{Peer: "relay-a", Parent: true, Dial: tp.pa.Addr(), Weight: weightA},
			{Peer: "relay-b", Parent: true, Dial: tp.pb.Addr(), Weight: weightB},
		}})
	tp.leaf = muxtest.StartNode(t, tp.leafCfg, muxtest.WithLog(log))
	muxtest.WaitFor(t, 10*time.Second, "every link up and the root's route to the leaf", func() bool {
		return len(tp.leaf.Links()) == 2 && len(tp.root.Links()) == 2 && tp.root.Routes()["leaf"] != "" &&
			len(tp.a.PathToRoot()) == 1 && len(tp.b.PathToRoot()) == 1
	})
	return tp
}

// through opens a session from the leaf to the root and reports which
// relay forwarded it.
func (tp *twoParents) through(t *testing.T) string {
	t.Helper()
	a0, b0 := tp.fwdA.Load(), tp.fwdB.Load()
	c, err := tp.leaf.Open(context.Background(), "root", "sink")
	if err != nil {
		t.Fatalf("open leaf -> root: %v", err)
	}
	_ = c.Close()
	var via string
	muxtest.WaitFor(t, 5*time.Second, "a relay's count of the session", func() bool {
		switch {
		case tp.fwdA.Load() > a0:
			via = "relay-a"
		case tp.fwdB.Load() > b0:
			via = "relay-b"
		}
		return via != ""
	})
	return via
}

// changes counts the leaf's lines "active parent is now X".
func (tp *twoParents) changes(to string) int {
	tp.leafLog.mu.Lock()
	defer tp.leafLog.mu.Unlock()
	k := 0
	for _, r := range tp.leafLog.entries {
		if strings.HasPrefix(r.Message, "active parent is now "+to+" ") {
			k++
		}
	}
	return k
}

// waitRTT waits until the leaf's smoothed round trip to peer is at least
// lo and at most hi.
func (tp *twoParents) waitRTT(t *testing.T, peer string, lo, hi time.Duration) {
	t.Helper()
	muxtest.WaitFor(t, 10*time.Second, "the round trip to "+peer+" measured", func() bool {
		r := tp.leaf.ParentRTT(peer)
		return r >= lo && r <= hi
	})
}

// TestParentNearest: a nearest leaf sends new sessions through the relay
// with the lower round trip; it stays there while the other is better by
// less than the margin, and moves once the other is better by more than
// the margin for the hold. A session in flight stays where it was opened.
func TestParentNearest(t *testing.T) {
	pol := mux.ParentPolicy{Selection: mux.SelectNearest, NearestMargin: mux.Margin{Ratio: 0.2},
		NearestHold: 500 * time.Millisecond, ProbeInterval: 50 * time.Millisecond}
	tp := startTwoParents(t, 20*time.Millisecond, 2*time.Millisecond, pol, 0, 0)
	muxtest.WaitFor(t, 10*time.Second, "relay-b chosen", func() bool { return tp.leaf.ActiveParent() == "relay-b" })
	if via := tp.through(t); via != "relay-b" {
		t.Fatalf("a new session went through %s, want the nearer relay-b", via)
	}
	held, err := tp.leaf.Open(context.Background(), "root", "hold")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	// relay-b now 44ms away against relay-a's 40ms: better by 9%, less
	// than the margin. Once measured, three holds pass without a move.
	tp.pb.SetDelay(22 * time.Millisecond)
	tp.waitRTT(t, "relay-b", 42*time.Millisecond, 49*time.Millisecond)
	for i := 0; i < 3; i++ {
		time.Sleep(pol.NearestHold)
		if p := tp.leaf.ActiveParent(); p != "relay-b" {
			t.Fatalf("moved to %s on a difference below the margin (relay-a %s, relay-b %s)", p, tp.leaf.ParentRTT("relay-a"), tp.leaf.ParentRTT("relay-b"))
		}
	}
	if k := tp.changes("relay-a"); k != 0 {
		t.Fatalf("%d moves to relay-a logged", k)
	}

	// relay-b 100ms away: relay-a is better by 60%; the leaf moves.
	tp.pb.SetDelay(50 * time.Millisecond)
	muxtest.WaitFor(t, 10*time.Second, "relay-a chosen", func() bool { return tp.leaf.ActiveParent() == "relay-a" })
	if via := tp.through(t); via != "relay-a" {
		t.Fatalf("a new session went through %s after the move, want relay-a", via)
	}
	rec := tp.leafLog.waitLog(t, "the move logged with its reason", func(r logRecord) bool {
		return strings.HasPrefix(r.Message, "active parent is now relay-a (") && strings.Contains(r.Message, "better by more than 20%")
	})
	if rec.Level != logrus.InfoLevel {
		t.Fatalf("move logged at %s, want info (level 3)", rec.Level)
	}
	if got := tp.b.Sessions(); got != 1 {
		t.Fatalf("relay-b carries %d sessions, want the one opened before the move", got)
	}
	if _, err := held.Write([]byte("x")); err != nil {
		t.Fatalf("the session opened before the move: %v", err)
	}
}

// TestParentSpread: a spread leaf sends 1,000 new sessions through its two
// relays in proportion to their weights, 3 to 1.
func TestParentSpread(t *testing.T) {
	pol := mux.ParentPolicy{Selection: mux.SelectSpread}
	tp := startTwoParents(t, 0, 0, pol, 3, 1)
	tp.leafLog.waitLog(t, "both relays ready", func(r logRecord) bool {
		return r.Message == "new sessions spread over relay-a (weight 3), relay-b (weight 1)"
	})
	const total, workers = 1000, 8
	var wg sync.WaitGroup
	var next, failed atomic.Int64
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= total {
				c, err := tp.leaf.Open(context.Background(), "root", "sink")
				if err != nil {
					if failed.Add(1) == 1 {
						t.Errorf("open: %v", err)
					}
					continue
				}
				_ = c.Close()
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d sessions failed to open", f)
	}
	muxtest.WaitFor(t, 10*time.Second, "every session counted at a relay", func() bool {
		return tp.fwdA.Load()+tp.fwdB.Load() == total
	})
	a, b := tp.fwdA.Load(), tp.fwdB.Load()
	t.Logf("relay-a %d, relay-b %d", a, b)
	if a < 675 || a > 825 || b < 225 || b > 275 {
		t.Fatalf("relay-a %d and relay-b %d sessions, want 750 and 250 within 10%%", a, b)
	}
}

// TestParentFailAfter: a parent whose link drops is kept as the chosen
// one for parent_fail_after: new sessions meanwhile go through the other
// parent, and the choice does not change when it returns in time.
func TestParentFailAfter(t *testing.T) {
	pol := mux.ParentPolicy{FailAfter: 30 * time.Second}
	tp := startTwoParents(t, 0, 0, pol, 0, 0)
	muxtest.WaitFor(t, 10*time.Second, "relay-a chosen", func() bool { return tp.leaf.ActiveParent() == "relay-a" })
	before := tp.changes("relay-b")
	tp.pa.Close() // relay-a unreachable
	muxtest.WaitFor(t, 10*time.Second, "the link to relay-a down", func() bool { return len(tp.leaf.Links()) == 1 })
	if via := tp.through(t); via != "relay-b" {
		t.Fatalf("a session while relay-a is down went through %s", via)
	}
	if p := tp.leaf.ActiveParent(); p != "relay-a" {
		t.Fatalf("active parent %s within parent_fail_after, want relay-a kept", p)
	}
	if k := tp.changes("relay-b"); k != before {
		t.Fatalf("a move to relay-b logged within parent_fail_after")
	}
}

// TestParentFailAfterExpires: once parent_fail_after has passed, the
// choice moves, and the move is logged with the reason.
func TestParentFailAfterExpires(t *testing.T) {
	pol := mux.ParentPolicy{FailAfter: 300 * time.Millisecond}
	tp := startTwoParents(t, 0, 0, pol, 0, 0)
	muxtest.WaitFor(t, 10*time.Second, "relay-a chosen", func() bool { return tp.leaf.ActiveParent() == "relay-a" })
	tp.pa.Close()
	muxtest.WaitFor(t, 10*time.Second, "relay-b chosen once relay-a failed", func() bool { return tp.leaf.ActiveParent() == "relay-b" })
	tp.leafLog.waitLog(t, "the move with its reason", func(r logRecord) bool {
		return strings.HasPrefix(r.Message, "active parent is now relay-b (relay-a is down")
	})
}

// TestParentDamping: a parent whose link flaps is suppressed: while held
// down, new sessions go through the other parent though it is up and
// first in order; once its penalty has decayed it is reused. Each change
// is logged once.
func TestParentDamping(t *testing.T) {
	pol := mux.ParentPolicy{Damping: mux.Damping{Penalty: 1000, Suppress: 1800, Reuse: 900, HalfLife: 4 * time.Second}}
	tp := startTwoParents(t, 0, 0, pol, 0, 0)
	muxtest.WaitFor(t, 10*time.Second, "relay-a chosen", func() bool { return tp.leaf.ActiveParent() == "relay-a" })
	for i := 0; i < 3; i++ {
		muxtest.WaitFor(t, 10*time.Second, "the link to relay-a up", func() bool { return len(tp.leaf.Links()) == 2 })
		tp.pa.Cut()
		muxtest.WaitFor(t, 10*time.Second, "the link to relay-a down", func() bool { return len(tp.leaf.Links()) < 2 })
	}
	pen, sup := tp.leaf.ParentPenalty("relay-a")
	if !sup {
		t.Fatalf("relay-a not suppressed after 3 flaps (penalty %.0f)", pen)
	}
	muxtest.WaitFor(t, 10*time.Second, "the link to relay-a up again", func() bool { return len(tp.leaf.Links()) == 2 })
	if _, sup := tp.leaf.ParentPenalty("relay-a"); sup {
		if p := tp.leaf.ActiveParent(); p != "relay-b" {
			t.Fatalf("active parent %s while relay-a is suppressed", p)
		}
		if via := tp.through(t); via != "relay-b" {
			t.Fatalf("a session went through %s while relay-a is suppressed", via)
		}
		st := tp.leaf.Status()
		if st.ActiveParent != "relay-b" || st.ParentSelection != "ordered" || st.Links[0].Peer != "relay-a" || !st.Links[0].Suppressed || st.Links[0].Penalty < 900 {
			t.Fatalf("status: selection %q, active parent %q, %+v", st.ParentSelection, st.ActiveParent, st.Links[0])
		}
	}
	tp.leafLog.waitLog(t, "relay-a suppressed", func(r logRecord) bool {
		return r.Level == logrus.WarnLevel && strings.HasPrefix(r.Message, "parent relay-a suppressed")
	})
	muxtest.WaitFor(t, 15*time.Second, "relay-a reused", func() bool { return tp.leaf.ActiveParent() == "relay-a" })
	if via := tp.through(t); via != "relay-a" {
		t.Fatalf("a session went through %s once relay-a was reused", via)
	}
	count := func(prefix string) int {
		tp.leafLog.mu.Lock()
		defer tp.leafLog.mu.Unlock()
		k := 0
		for _, r := range tp.leafLog.entries {
			if strings.HasPrefix(r.Message, prefix) {
				k++
			}
		}
		return k
	}
	if s, r := count("parent relay-a suppressed"), count("parent relay-a reused"); s != 1 || r != 1 {
		t.Fatalf("logged %d suppressions and %d reuses, want one each", s, r)
	}
}

// TestParentPolicyValidate: wrong settings are refused with clear errors.
func TestParentPolicyValidate(t *testing.T) {
	for _, tc := range []struct {
		pol  mux.ParentPolicy
		want string
	}{
		{mux.ParentPolicy{Selection: 7}, "parent selection 7 is unknown"},
		{mux.ParentPolicy{NearestMargin: mux.Margin{Ratio: 1.5}}, "nearest margin"},
		{mux.ParentPolicy{NearestHold: -time.Second}, "nearest hold -1s is negative"},
		{mux.ParentPolicy{FailAfter: -time.Second}, "parent fail after -1s is negative"},
		{mux.ParentPolicy{Damping: mux.Damping{Penalty: 1000, Suppress: 500, Reuse: 800}}, "damping reuse 800 must be below suppress 500"},
	} {
		errs := tc.pol.Validate()
		if len(errs) == 0 || !strings.Contains(errs[0].Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.pol, errs, tc.want)
		}
	}
	if errs := (mux.ParentPolicy{Selection: mux.SelectNearest}).Validate(); len(errs) != 0 {
		t.Errorf("defaults refused: %v", errs)
	}
	for _, s := range []string{"20%", "5ms"} {
		if _, err := mux.ParseMargin(s); err != nil {
			t.Errorf("margin %s: %v", s, err)
		}
	}
	for _, s := range []string{"0%", "120%", "-5ms", "fast", ""} {
		if _, err := mux.ParseMargin(s); err == nil {
			t.Errorf("margin %q accepted", s)
		}
	}
	cfg := mux.Config{Label: "leaf", Role: mux.RoleLeaf, Links: []mux.LinkConfig{
		{Peer: "p", Parent: true, Dial: "127.0.0.1:1", Plaintext: true, Weight: -1},
		{Peer: "c", Listen: "127.0.0.1:0", Plaintext: true, Weight: 2},
	}}
	got := errString(cfg.Validate())
	for _, want := range []string{"weight -1 is negative", "a weight is for parents only"} {
		if !strings.Contains(got, want) {
			t.Errorf("config errors %q lack %q", got, want)
		}
	}
}

func errString(errs []error) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString(e.Error())
		b.WriteString("; ")
	}
	return b.String()
}

// TestParentDowncalls: whatever a spread leaf chooses for its upcalls, it
// announces itself to both relays; the root's downcalls reach it through
// the relay its table names, and through the other once that relay loses
// the leaf, while the leaf's upcalls go on through the relay left.
func TestParentDowncalls(t *testing.T) {
	tp := startTwoParents(t, 0, 0, mux.ParentPolicy{Selection: mux.SelectSpread}, 1, 1)
	for _, r := range []*mux.Node{tp.a, tp.b} {
		r := r
		muxtest.WaitFor(t, 10*time.Second, "both relays route the leaf", func() bool { return r.Routes()["leaf"] == "leaf" })
	}
	down := func() {
		t.Helper()
		c, err := tp.root.Open(context.Background(), "leaf", "sink")
		if err != nil {
			t.Fatalf("downcall root -> leaf: %v", err)
		}
		_ = c.Close()
	}
	down()
	first := tp.root.Routes()["leaf"]
	other, cut := "relay-b", tp.pa
	if first == "relay-b" {
		other, cut = "relay-a", tp.pb
	}
	muxtest.WaitFor(t, 10*time.Second, "the leaf's network at the root", func() bool {
		owner, err := tp.root.ServedBy("127.0.1.7", 80)
		return err == nil && owner == "leaf"
	})
	cut.Close()
	muxtest.WaitFor(t, 10*time.Second, "the root's route to the leaf through "+other, func() bool { return tp.root.Routes()["leaf"] == other })
	down()
	// The leaf's network, withdrawn with its label by the relay that lost
	// it, is still served through the other.
	muxtest.WaitFor(t, 10*time.Second, "the first relay's networks empty", func() bool {
		r := tp.a
		if other == "relay-a" {
			r = tp.b
		}
		return len(r.Networks()) == 0
	})
	if owner, err := tp.root.ServedBy("127.0.1.7", 80); err != nil || owner != "leaf" || len(tp.root.Networks()) != 1 {
		t.Fatalf("after the cut the root serves the leaf's network by %q, %v (networks %v)", owner, err, tp.root.Networks())
	}
	for i := 0; i < 4; i++ {
		if via := tp.through(t); via != other {
			t.Fatalf("upcall %d through %s, whose link to the leaf is down", i, via)
		}
	}
}

// TestParentReconfigure: a reconfiguration changes the parent selection of
// a running leaf without touching its links: an ordered leaf becomes a
// spread one and shares its new sessions between both relays.
func TestParentReconfigure(t *testing.T) {
	tp := startTwoParents(t, 0, 0, mux.ParentPolicy{}, 0, 0)
	muxtest.WaitFor(t, 10*time.Second, "relay-a chosen", func() bool { return tp.leaf.ActiveParent() == "relay-a" })
	dialsA, dialsB := tp.pa.Accepted(), tp.pb.Accepted()
	next := tp.leafCfg
	next.Parents = mux.ParentPolicy{Selection: mux.SelectSpread}
	changes, err := tp.leaf.Reconfigure(next, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(changes, "; "); got != "parent selection spread (was ordered)" {
		t.Fatalf("changes %q", got)
	}
	tp.leafLog.waitLog(t, "the spread", func(r logRecord) bool {
		return r.Message == "new sessions spread over relay-a (weight 1), relay-b (weight 1)"
	})
	got := map[string]int{}
	for i := 0; i < 10; i++ {
		got[tp.through(t)]++
	}
	if got["relay-a"] != 5 || got["relay-b"] != 5 {
		t.Fatalf("10 sessions spread %v, want 5 and 5", got)
	}
	if a, b := tp.pa.Accepted(), tp.pb.Accepted(); a != dialsA || b != dialsB || len(tp.leaf.Links()) != 2 {
		t.Fatalf("links made again by the reconfiguration: %d and %d connections, were %d and %d", a, b, dialsA, dialsB)
	}
}
