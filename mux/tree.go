package mux

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
)

// This file is PROTOCOL.md section 2.1: the status query of the tree. The
// root asks each child over its link; each node answers only on the link
// to a parent, asks its own children the same way with less time, and
// answers with its status and theirs.

// streamTree is the type byte of a tree query stream.
const streamTree byte = 'T'

// Tree answer codes.
const (
	treeAnswerOK      = 0
	treeAnswerRefused = 1
)

// Defaults of the tree query's tuning, and the least time worth asking a
// child with.
const (
	defaultTreeTimeout   = 5 * time.Second
	defaultTreeAnswerMax = 1 << 20
	minTreeBudget        = 20 * time.Millisecond
	maxTreeQueries       = 4 // tree queries a node answers at once from one parent; more are refused
)

// The states of a node in a tree status.
const (
	TreeOK          = "ok"          // it answered
	TreeNoAnswer    = "no answer"   // its link is up, but it did not answer in time
	TreeUnreachable = "unreachable" // its link, or a link above it, is down
	TreeRefused     = "refused"     // it refused the query
	TreeTooLarge    = "too large"   // its answer was over the size cap
)

// TreeNode is one node of the tree status the root collects: the node's
// own status, as the node gave it, and its children's. A node that did
// not answer carries what its parent last knew of it (AsOf says when),
// with State and Detail saying why.
type TreeNode struct {
	Label     string        `json:"label"`
	State     string        `json:"state"`
	Detail    string        `json:"detail,omitempty"`
	Role      string        `json:"role,omitempty"`
	Version   string        `json:"version,omitempty"`
	Uptime    time.Duration `json:"uptime_ns,omitempty"`
	Sessions  int           `json:"sessions"`
	Routes    int           `json:"routes"`
	Links     []TreeLink    `json:"links,omitempty"`
	AsOf      time.Time     `json:"as_of,omitempty"` // when the node gave this status; zero: never
	Truncated bool          `json:"truncated,omitempty"`
	Children  []TreeNode    `json:"children,omitempty"`
}

// TreeLink is one configured link of a node in a tree status.
type TreeLink struct {
	Peer     string        `json:"peer"`
	Side     string        `json:"side"`
	Up       bool          `json:"up"`
	Since    time.Time     `json:"since,omitempty"`
	RTT      time.Duration `json:"rtt_ns,omitempty"`
	Sessions int           `json:"sessions"`
}

// Link returns n's link to peer, and whether n has one.
func (t TreeNode) Link(peer string) (TreeLink, bool) {
	for _, l := range t.Links {
		if l.Peer == peer {
			return l, true
		}
	}
	return TreeLink{}, false
}

// Walk calls f for t and every node below it, parents first, with its
// depth (0 for t).
func (t TreeNode) Walk(f func(n TreeNode, depth int)) {
	var walk func(TreeNode, int)
	walk = func(n TreeNode, d int) {
		f(n, d)
		for _, c := range n.Children {
			walk(c, d+1)
		}
	}
	walk(t, 0)
}

// treeState is what a node keeps for tree queries; its zero value is
// ready.
type treeState struct {
	mu     sync.Mutex
	last   map[string]TreeNode // by child: its last answer
	labels map[string][]string // by child: the labels it announced when its link last went down

	logOnce  sync.Once
	refusals *refusalLog // queries refused, flood-proof

	hold atomic.Pointer[func()] // tests: runs before this node answers a query
}

func (n *Node) treeTimeout() time.Duration {
	if n.tuning().TreeTimeout > 0 {
		return n.tuning().TreeTimeout
	}
	return defaultTreeTimeout
}

func (n *Node) treeAnswerMax() int {
	if n.tuning().TreeAnswerMax > 0 {
		return n.tuning().TreeAnswerMax
	}
	return defaultTreeAnswerMax
}

func (n *Node) treeRefusals() *refusalLog {
	n.tree.logOnce.Do(func() {
		n.tree.refusals = newRefusalLog(n.log.WithField("component", "tree"), "tree queries refused", n.tuning().RefusalLogBurst).follow(n)
	})
	return n.tree.refusals
}

// Tree collects the status of the whole tree over the links: this node's
// and, through each child link, the child's subtree. Only the root may
// ask (ErrNotRoot otherwise). It returns within Tuning.TreeTimeout, or
// ctx's deadline when that is sooner; the children that did not answer by
// then show as such, with what was last known of them.
func (n *Node) Tree(ctx context.Context) (TreeNode, error) {
	if n.cfg.Role != RoleRoot {
		return TreeNode{}, fmt.Errorf("%w: %s is a %s", ErrNotRoot, n.cfg.Label, n.cfg.Role)
	}
	budget := n.treeTimeout()
	if d, ok := ctx.Deadline(); ok && time.Until(d) < budget {
		budget = time.Until(d)
	}
	return n.collectTree(ctx, budget, defaultHops), nil
}

// treeSelf is this node's own part of a tree status.
func (n *Node) treeSelf() TreeNode {
	s := n.Status()
	t := TreeNode{Label: s.Label, State: TreeOK, Role: s.Role, Version: s.Version, Uptime: s.Uptime,
		Sessions: s.Sessions, Routes: s.Routes, AsOf: time.Now()}
	for _, l := range s.Links {
		t.Links = append(t.Links, TreeLink{Peer: l.Peer, Side: l.Side, Up: l.Up, Since: l.Since, RTT: l.RTT, Sessions: l.Sessions})
	}
	return t
}

// collectTree is this node's status with its children's, each child asked
// with three quarters of budget, at most hops levels further down. It
// returns within that time.
func (n *Node) collectTree(ctx context.Context, budget time.Duration, hops int) TreeNode {
	self := n.treeSelf()
	var children []string
	n.mu.Lock() // cfg.Links: a reconfiguration may replace them
	for _, lc := range n.cfg.Links {
		if !lc.Parent {
			children = append(children, lc.Peer)
		}
	}
	n.mu.Unlock()
	sort.Strings(children)
	childBudget := budget * 3 / 4
	out := make([]TreeNode, len(children))
	var wg sync.WaitGroup
	for i, peer := range children {
		n.mu.Lock()
		l := n.links[peer]
		n.mu.Unlock()
		lk, _ := self.Link(peer)
		switch {
		case l == nil:
			// Since when is in this node's links.
			why := "link down"
			if lk.Since.IsZero() {
				why += ", never up"
			}
			out[i] = n.lastKnown(peer, TreeUnreachable, why)
		case hops <= 0:
			out[i] = n.lastKnown(peer, TreeNoAnswer, "not asked: hop limit reached")
		case childBudget < minTreeBudget:
			out[i] = n.lastKnown(peer, TreeNoAnswer, "not asked: no time left")
		default:
			wg.Add(1)
			go func() {
				defer wg.Done()
				out[i] = n.askTree(ctx, l, childBudget, hops-1)
			}()
		}
	}
	wg.Wait()
	self.Children = out
	return self
}

// lastKnown is what this node last knew of its child peer, marked with
// state: the child's last answer, or else the labels it announced before
// its link went down; every node below it gets the same state.
func (n *Node) lastKnown(peer, state, detail string) TreeNode {
	n.tree.mu.Lock()
	t, ok := n.tree.last[peer]
	labels := n.tree.labels[peer]
	n.tree.mu.Unlock()
	if !ok {
		t = TreeNode{Label: peer}
		for _, lb := range labels {
			if lb != peer {
				t.Children = append(t.Children, TreeNode{Label: lb})
			}
		}
	}
	return markTree(t, state, detail, "")
}

// markTree returns a copy of t in state, with detail at its top and, below
// it, a detail that names the node above (via).
func markTree(t TreeNode, state, detail, via string) TreeNode {
	t.State = state
	t.Detail = detail
	if via != "" {
		t.Detail = "below " + via
	}
	kids := make([]TreeNode, len(t.Children))
	for i, c := range t.Children {
		kids[i] = markTree(c, state, "", t.Label)
	}
	if len(kids) == 0 {
		kids = nil
	}
	t.Children = kids
	return t
}

// rememberSubtree keeps the labels the child peer announced, for the tree
// status while its link is down. Called before its routes are dropped.
func (n *Node) rememberSubtree(peer string) {
	var labels []string
	n.table.mu.Lock()
	for lb := range n.table.below[peer] {
		labels = append(labels, lb)
	}
	n.table.mu.Unlock()
	sort.Strings(labels)
	n.tree.mu.Lock()
	defer n.tree.mu.Unlock()
	if n.tree.labels == nil {
		n.tree.labels = map[string][]string{}
	}
	n.tree.labels[peer] = labels
}

// askTree asks the child at the other end of l for its subtree, giving it
// budget, and waits that long at most.
func (n *Node) askTree(ctx context.Context, l *link, budget time.Duration, hops int) TreeNode {
	peer := l.cfg.Peer
	st, err := l.sess.OpenStream()
	if err != nil {
		return n.lastKnown(peer, TreeNoAnswer, "open stream: "+err.Error())
	}
	defer abortStream(st)
	_ = st.SetDeadline(time.Now().Add(budget))
	stop := context.AfterFunc(ctx, func() { _ = st.SetDeadline(time.Now()) })
	defer stop()
	t, err := n.readTreeAnswer(st, encodeTreeQuery(budget, hops))
	var tooLarge *treeTooLargeError
	var refused *treeRefusedError
	switch {
	case errors.As(err, &tooLarge):
		return n.lastKnown(peer, TreeTooLarge, err.Error())
	case errors.As(err, &refused):
		return n.lastKnown(peer, TreeRefused, refused.reason)
	case errors.Is(err, yamux.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		return n.lastKnown(peer, TreeNoAnswer, fmt.Sprintf("no answer within %s", budget.Round(time.Millisecond)))
	case err != nil:
		return n.lastKnown(peer, TreeNoAnswer, "bad answer: "+err.Error())
	}
	if t.Label != peer {
		return n.lastKnown(peer, TreeNoAnswer, fmt.Sprintf("bad answer: it names %q", t.Label))
	}
	t.State = TreeOK
	n.tree.mu.Lock()
	if n.tree.last == nil {
		n.tree.last = map[string]TreeNode{}
	}
	if old, ok := n.tree.last[peer]; ok {
		t = graftLastKnown(t, old)
	}
	n.tree.last[peer] = t
	n.tree.mu.Unlock()
	return t
}

// graftLastKnown fills in, from old (an earlier answer of the same
// child), what fresh does not know: a node that did not answer and that
// its parent never heard from (the parent restarted since, say) gets what
// old had of it, marked as fresh marks it.
func graftLastKnown(fresh, old TreeNode) TreeNode {
	if fresh.State != TreeOK && fresh.AsOf.IsZero() {
		if old.AsOf.IsZero() && (len(fresh.Children) > 0 || len(old.Children) == 0) {
			return fresh
		}
		return markTree(old, fresh.State, fresh.Detail, "")
	}
	if len(fresh.Children) == 0 || len(old.Children) == 0 {
		return fresh
	}
	byLabel := make(map[string]TreeNode, len(old.Children))
	for _, c := range old.Children {
		byLabel[c.Label] = c
	}
	kids := make([]TreeNode, len(fresh.Children))
	for i, c := range fresh.Children {
		if o, ok := byLabel[c.Label]; ok {
			c = graftLastKnown(c, o)
		}
		kids[i] = c
	}
	fresh.Children = kids
	return fresh
}
