package mux

import (
	"context"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// What the black-box tests (package mux_test) need of the package's
// internals: the hello, to speak it by hand to a link listener, and the
// receive buffers' shrink delay, to wait for it in a benchmark.

// Hello is the hello a side sends on a new link connection.
type Hello = hello

// Encode returns h as it goes on the wire.
func (h hello) Encode() []byte { return h.encode() }

var (
	ReadHello     = readHello
	EncodeVerdict = encodeVerdict
	ReadVerdict   = readVerdict
)

const ShrinkDelay = shrinkDelay

// The white-box tests of this package cannot import muxtest (it imports
// mux): TestMain (main_test.go, package mux_test) hands them its logger and
// tuning through SetTestKit before any test runs.
var (
	testLog    func(testing.TB) *logrus.Entry
	fastTuning func() Tuning
)

// SetTestKit gives the white-box tests muxtest's Log and FastTuning.
func SetTestKit(log func(testing.TB) *logrus.Entry, tuning func() Tuning) {
	testLog, fastTuning = log, tuning
}

// The control messages and session opens, for scripted peers that speak
// the protocol by hand (an attacker's child, a flood).

// CtrlMsg is a control message.
type CtrlMsg = ctrlMsg

// Control message types.
const (
	CtrlWho       = ctrlWho
	CtrlWhoReply  = ctrlWhoReply
	CtrlTell      = ctrlTell
	CtrlTellReply = ctrlTellReply
	CtrlDelta     = ctrlDelta
	MaxChunk      = maxChunk
)

// Encode returns m as it goes on the control stream.
func (m ctrlMsg) Encode() []byte { return m.encode() }

// Encode returns the stream type byte and the open header.
func (h Header) Encode() []byte { return h.encode() }

var (
	ReadCtrl   = readCtrl
	ReadStatus = readStatus
)

// RouteCount is how many labels n routes: len(n.Routes()) without the copy,
// for polling a table of 100,000 routes.
func (n *Node) RouteCount() int { return n.table.size() }

// HelloPeak is the most link connections that were in their TLS handshake
// or hello at once on any of the node's listen addresses.
func (n *Node) HelloPeak() int {
	peak := 0
	for _, ll := range n.listeners {
		ll.gate.mu.Lock()
		peak = max(peak, ll.gate.peak)
		ll.gate.mu.Unlock()
	}
	return peak
}

// The status query of the tree, asked from any node (a child asking its
// parent, say), and a child made slow to answer it.

// AskTree asks the neighbour at the other end of n's link to peer for its
// subtree, as a parent does, giving it budget.
func AskTree(n *Node, peer string, budget time.Duration) TreeNode {
	n.mu.Lock()
	l := n.links[peer]
	n.mu.Unlock()
	if l == nil {
		return TreeNode{Label: peer, State: "no link"}
	}
	return n.askTree(context.Background(), l, budget, defaultHops)
}

// SetTreeHold makes n run hold before it answers each tree query.
func SetTreeHold(n *Node, hold func()) { n.tree.hold.Store(&hold) }

// SetAuthLimit sets the cap on failed authentications of n's address
// entries (AuthFailMax, AuthFailWindow by default), so that a test need not
// wait a minute for a window to end.
func (n *Node) SetAuthLimit(max int, window time.Duration) {
	n.authFails.mu.Lock()
	defer n.authFails.mu.Unlock()
	n.authFails.max, n.authFails.window = max, window
}
