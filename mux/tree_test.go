package mux_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// treeShape is the tree as "label(state)" lines, indented by depth.
func treeShape(t mux.TreeNode) string {
	var b strings.Builder
	t.Walk(func(n mux.TreeNode, depth int) {
		fmt.Fprintf(&b, "%s%s(%s)\n", strings.Repeat("  ", depth), n.Label, n.State)
	})
	return b.String()
}

func wantShape(t *testing.T, tree mux.TreeNode, want string) {
	t.Helper()
	if got := treeShape(tree); got != want {
		t.Fatalf("tree:\n%swant:\n%s", got, want)
	}
}

func TestTreeStatus(t *testing.T) {
	hold := make(chan struct{})
	handler := func(_ context.Context, c *mux.Conn) {
		defer c.Close()
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err == nil {
			_, _ = c.Write(buf)
		}
		<-hold
	}
	c := startChain(t, chainOpts{rootServices: map[string]mux.Service{"echo": {Handler: handler}}})
	conn, err := c.leaf.Open(context.Background(), "root", "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	defer close(hold)
	if _, err := conn.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(conn, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}

	tree, err := c.root.Tree(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantShape(t, tree, "root(ok)\n  relay1(ok)\n    relay2(ok)\n      leaf(ok)\n")
	roles := map[string]string{}
	tree.Walk(func(n mux.TreeNode, _ int) {
		roles[n.Label] = n.Role
		if n.Uptime <= 0 || n.AsOf.IsZero() {
			t.Errorf("%s: uptime %s, as of %s", n.Label, n.Uptime, n.AsOf)
		}
		// The one session crosses every node.
		if n.Sessions != 1 {
			t.Errorf("%s: %d sessions, want 1", n.Label, n.Sessions)
		}
	})
	if roles["root"] != "root" || roles["relay1"] != "relay" || roles["relay2"] != "relay" || roles["leaf"] != "leaf" {
		t.Errorf("roles: %v", roles)
	}
	// Each node gives its links: relay1's link to relay2, as relay1 sees it.
	r1 := tree.Children[0]
	l, ok := r1.Link("relay2")
	if !ok || !l.Up || l.Side != "child" || l.Since.IsZero() || l.Sessions != 1 {
		t.Errorf("relay1's link to relay2: %+v (found %v)", l, ok)
	}

	// Only the root collects the tree.
	for _, n := range []*mux.Node{c.r1, c.r2, c.leaf} {
		if _, err := n.Tree(context.Background()); !errors.Is(err, mux.ErrNotRoot) {
			t.Errorf("%s: Tree: %v, want ErrNotRoot", n.Label(), err)
		}
	}
}

// A node answers a tree query only on the link to its parent: relay2
// asking its parent relay1 is refused, relay1 logs why, and the link
// stays up.
func TestTreeQueryFromChildRefused(t *testing.T) {
	tc := startTestChain(t, tchainOpts{})
	got := mux.AskTree(tc.r2, "relay1", 2*time.Second)
	if got.State != mux.TreeRefused || !strings.Contains(got.Detail, "only from a parent") {
		t.Fatalf("relay2 asking relay1: %+v, want refused", got)
	}
	if got.Role != "" || len(got.Children) > 0 {
		t.Errorf("a refusal carries no status: %+v", got)
	}
	tc.logs["relay1"].waitLog(t, "the refusal", errorWith("relay2 is a child of relay1", "only from a parent"))
	// So is the root asked by its child.
	if got := mux.AskTree(tc.r1, "root", 2*time.Second); got.State != mux.TreeRefused {
		t.Fatalf("relay1 asking the root: %+v, want refused", got)
	}
	tc.logs["root"].waitLog(t, "the root's refusal", errorWith("relay1 is a child of root"))
	if l := tc.r1.Links(); len(l) != 2 {
		t.Errorf("relay1's links after the refusals: %v", l)
	}
	// The parent's own query still goes through.
	tree, err := tc.root.Tree(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantShape(t, tree, "root(ok)\n  relay1(ok)\n    relay2(ok)\n      leaf(ok)\n")
}

// A child that does not answer in time shows as "no answer", with what was
// last known below it, and the rest of the tree is there.
func TestTreeChildNoAnswer(t *testing.T) {
	tun := muxtest.FastTuning()
	tun.TreeTimeout = 2 * time.Second
	c := startChain(t, chainOpts{tuning: tun})
	first, err := c.root.Tree(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantShape(t, first, "root(ok)\n  relay1(ok)\n    relay2(ok)\n      leaf(ok)\n")

	release := make(chan struct{})
	held := make(chan struct{}, 1)
	mux.SetTreeHold(c.r2, func() {
		select {
		case held <- struct{}{}:
		default:
		}
		<-release
	})
	t.Cleanup(func() { close(release) })
	tree, err := c.root.Tree(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-held:
	default:
		t.Fatal("relay2 was not asked")
	}
	wantShape(t, tree, "root(ok)\n  relay1(ok)\n    relay2(no answer)\n      leaf(no answer)\n")
	r2 := tree.Children[0].Children[0]
	if !strings.Contains(r2.Detail, "no answer within") || r2.Role != "relay" || !r2.AsOf.Equal(first.Children[0].Children[0].AsOf) {
		t.Errorf("relay2: %+v; want its last answer, marked", r2)
	}
	if leaf := r2.Children[0]; leaf.Detail != "below relay2" {
		t.Errorf("leaf: %+v", leaf)
	}
}

// A link that is down shows its child unreachable, with the subtree it
// last answered or, never asked, the labels it announced.
func TestTreeUnreachable(t *testing.T) {
	var stopR2 func()
	tun := muxtest.FastTuning()
	root := muxtest.StartNode(t, mux.Config{Label: "root", Role: mux.RoleRoot, Tuning: tun, Links: []mux.LinkConfig{
		{Peer: "relay1", Listen: "127.0.0.1:0"}}})
	r1 := muxtest.StartNode(t, mux.Config{Label: "relay1", Role: mux.RoleRelay, Tuning: tun, Links: []mux.LinkConfig{
		{Peer: "root", Parent: true, Dial: root.LinkAddr("relay1").String()},
		{Peer: "relay2", Listen: "127.0.0.1:0"},
		{Peer: "es-never", Listen: "127.0.0.1:0"}}})
	r2 := muxtest.StartNode(t, mux.Config{Label: "relay2", Role: mux.RoleRelay, Tuning: tun, Links: []mux.LinkConfig{
		{Peer: "relay1", Parent: true, Dial: r1.LinkAddr("relay2").String()},
		{Peer: "leaf", Listen: "127.0.0.1:0"}}}, muxtest.WithStop(&stopR2))
	muxtest.StartNode(t, mux.Config{Label: "leaf", Role: mux.RoleLeaf, Tuning: tun, Links: []mux.LinkConfig{
		{Peer: "relay2", Parent: true, Dial: r2.LinkAddr("leaf").String()}}})
	muxtest.WaitFor(t, 10*time.Second, "the routes", func() bool {
		return root.Routes()["leaf"] == "relay1" && r1.Routes()["leaf"] == "relay2"
	})
	stopR2()
	muxtest.WaitFor(t, 10*time.Second, "relay1 to see relay2 go", func() bool { return len(r1.Links()) == 1 })
	// Never asked before: the labels relay2 announced stand for its
	// subtree.
	tree, err := root.Tree(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantShape(t, tree, "root(ok)\n  relay1(ok)\n    es-never(unreachable)\n    relay2(unreachable)\n      leaf(unreachable)\n")
	es := tree.Children[0].Children[0]
	if !strings.Contains(es.Detail, "never up") || !es.AsOf.IsZero() {
		t.Errorf("es-never: %+v", es)
	}
	if r2 := tree.Children[0].Children[1]; r2.Detail != "link down" {
		t.Errorf("relay2: %+v", r2)
	}
}

// An answer is bounded: a node cuts its own down to the cap (children
// left out first), and a parent refuses one over its cap unread.
func TestTreeAnswerSizeCap(t *testing.T) {
	rootTun := muxtest.FastTuning()
	rootTun.TreeAnswerMax = 1500
	root := muxtest.StartNode(t, mux.Config{Label: "root", Role: mux.RoleRoot, Tuning: rootTun, Links: []mux.LinkConfig{
		{Peer: "relay-a", Listen: "127.0.0.1:0"},
		{Peer: "relay-b", Listen: "127.0.0.1:0"}}})
	// Each relay has 40 children configured, none up: its whole answer is
	// several kilobytes.
	relay := func(label string, max int) {
		tun := muxtest.FastTuning()
		tun.TreeAnswerMax = max
		links := []mux.LinkConfig{{Peer: "root", Parent: true, Dial: root.LinkAddr(label).String()}}
		for i := range 40 {
			links = append(links, mux.LinkConfig{Peer: fmt.Sprintf("%s-child-%02d", label, i), Listen: "127.0.0.1:0"})
		}
		muxtest.StartNode(t, mux.Config{Label: label, Role: mux.RoleRelay, Tuning: tun, Links: links})
	}
	relay("relay-a", 0)    // the default cap: its answer goes whole, over the root's
	relay("relay-b", 1200) // under the root's cap
	muxtest.WaitFor(t, 10*time.Second, "both relays' links", func() bool { return len(root.Links()) == 2 })
	tree, err := root.Tree(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	a, b := tree.Children[0], tree.Children[1]
	if a.Label != "relay-a" || a.State != mux.TreeTooLarge || !strings.Contains(a.Detail, "over the cap of 1500") {
		t.Errorf("relay-a: %+v, want too large", a)
	}
	if b.Label != "relay-b" || b.State != mux.TreeOK || !b.Truncated || len(b.Children) != 0 || b.Role != "relay" ||
		!strings.Contains(b.Detail, "left out") {
		t.Errorf("relay-b: %+v, want its own status with the children left out", b)
	}
}

// The root keeps what it learnt: a relay that restarted knows nothing of
// its child that died meanwhile, and the root still shows that child's
// subtree, unreachable.
func TestTreeLastKnownAcrossRestart(t *testing.T) {
	tun := muxtest.FastTuning()
	root := muxtest.StartNode(t, mux.Config{Label: "root", Role: mux.RoleRoot, Tuning: tun, Links: []mux.LinkConfig{
		{Peer: "relay1", Listen: "127.0.0.1:0"}}})
	r1cfg := mux.Config{Label: "relay1", Role: mux.RoleRelay, Tuning: tun, Links: []mux.LinkConfig{
		{Peer: "root", Parent: true, Dial: root.LinkAddr("relay1").String()},
		{Peer: "relay2", Listen: "127.0.0.1:0"}}}
	var stopR1, stopR2 func()
	r1 := muxtest.StartNode(t, r1cfg, muxtest.WithStop(&stopR1))
	r2 := muxtest.StartNode(t, mux.Config{Label: "relay2", Role: mux.RoleRelay, Tuning: tun, Links: []mux.LinkConfig{
		{Peer: "relay1", Parent: true, Dial: r1.LinkAddr("relay2").String()},
		{Peer: "leaf", Listen: "127.0.0.1:0"}}}, muxtest.WithStop(&stopR2))
	muxtest.StartNode(t, mux.Config{Label: "leaf", Role: mux.RoleLeaf, Tuning: tun, Links: []mux.LinkConfig{
		{Peer: "relay2", Parent: true, Dial: r2.LinkAddr("leaf").String()}}})
	muxtest.WaitFor(t, 10*time.Second, "the routes", func() bool { return root.Routes()["leaf"] == "relay1" })
	tree, err := root.Tree(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantShape(t, tree, "root(ok)\n  relay1(ok)\n    relay2(ok)\n      leaf(ok)\n")
	asOf := tree.Children[0].Children[0].AsOf

	stopR2()
	stopR1()
	muxtest.WaitFor(t, 10*time.Second, "the root to see relay1 go", func() bool { return len(root.Links()) == 0 })
	muxtest.StartNode(t, r1cfg)
	muxtest.WaitFor(t, 10*time.Second, "relay1 back", func() bool { return len(root.Links()) == 1 })
	tree, err = root.Tree(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantShape(t, tree, "root(ok)\n  relay1(ok)\n    relay2(unreachable)\n      leaf(unreachable)\n")
	if got := tree.Children[0].Children[0]; got.Detail != "link down, never up" || !got.AsOf.Equal(asOf) || got.Role != "relay" {
		t.Errorf("relay2: %+v; want relay1's word on it, with the root's last answer from it", got)
	}
}
