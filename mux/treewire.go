package mux

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/sirupsen/logrus"
)

// This file is the tree query on a link (PROTOCOL.md section 2.1): the
// query a parent sends down and the answer that comes back, a subtree or a
// refusal, as the asker reads them and as a node serves them; tree.go
// collects the answers into the tree status.

type treeTooLargeError struct{ size, max int }

func (e *treeTooLargeError) Error() string {
	return fmt.Sprintf("answer of %d bytes is over the cap of %d", e.size, e.max)
}

type treeRefusedError struct{ reason string }

func (e *treeRefusedError) Error() string { return "refused: " + e.reason }

// readTreeAnswer sends query on st and reads the answer, a subtree or a
// refusal, refusing an answer over this node's cap unread.
func (n *Node) readTreeAnswer(st io.ReadWriter, query []byte) (TreeNode, error) {
	var t TreeNode
	if _, err := st.Write(query); err != nil {
		return t, err
	}
	var hdr [5]byte
	if _, err := io.ReadFull(st, hdr[:]); err != nil {
		return t, err
	}
	size := int(binary.BigEndian.Uint32(hdr[1:]))
	switch hdr[0] {
	case treeAnswerOK:
		if size > n.treeAnswerMax() {
			return t, &treeTooLargeError{size: size, max: n.treeAnswerMax()}
		}
	case treeAnswerRefused:
		if size > maxReason {
			return t, fmt.Errorf("%w: refusal of %d bytes", ErrBadControl, size)
		}
	default:
		return t, fmt.Errorf("%w: tree answer code %d", ErrBadControl, hdr[0])
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(st, body); err != nil {
		return t, err
	}
	if hdr[0] == treeAnswerRefused {
		return t, &treeRefusedError{reason: string(body)}
	}
	if err := json.Unmarshal(body, &t); err != nil {
		return t, fmt.Errorf("%w: %v", ErrBadControl, err)
	}
	// No tree is deeper than a session may travel. A child that answers
	// with thousands of nested levels (within the size cap) would make this
	// node's own answer too deep for its parent's decoder, hiding this
	// node and its siblings: what is below the hop limit is cut off here.
	cutTree(&t, defaultHops)
	return t, nil
}

// cutTree drops what lies more than depth levels below t, marking the
// nodes it cut as truncated.
func cutTree(t *TreeNode, depth int) {
	if len(t.Children) == 0 {
		return
	}
	if depth <= 0 {
		t.Children = nil
		t.Truncated = true
		return
	}
	for i := range t.Children {
		cutTree(&t.Children[i], depth-1)
	}
}

// serveTree answers a tree query that arrived on l: only when l is the
// link to a parent, else it refuses and logs why. The query is read under
// the open timeout serveStream set.
func (n *Node) serveTree(l *link, st *yamux.Stream) {
	defer abortStream(st)
	log := n.log.WithFields(logrus.Fields{"component": "tree", "l": l.cfg.Peer})
	if !l.cfg.Parent {
		err := fmt.Errorf("%s is a child of %s: tree queries are answered only from a parent", l.cfg.Peer, n.cfg.Label)
		n.treeRefusals().note(l.cfg.Peer, log.WithError(err), "tree query refused")
		n.writeTreeAnswer(st, treeAnswerRefused, []byte("tree queries are answered only from a parent"))
		return
	}
	budget, hops, err := readTreeQuery(st)
	if err != nil {
		log.WithError(err).Warn("bad tree query; stream closed")
		return
	}
	_ = st.SetReadDeadline(time.Time{})
	// Counted per parent: a node with several parents answers each, so one
	// parent that keeps queries open cannot make the others' refused.
	if l.treeServing.Add(1) > maxTreeQueries {
		l.treeServing.Add(-1)
		log.Warnf("tree query refused: %d being answered already", maxTreeQueries)
		n.writeTreeAnswer(st, treeAnswerRefused, []byte("busy: too many tree queries at once"))
		return
	}
	defer l.treeServing.Add(-1)
	// The parent's time, but never more than this node would take itself.
	budget = min(budget, n.treeTimeout())
	log.WithFields(logrus.Fields{"budget": budget.String(), "hops": hops}).Debug("tree query received")
	if hold := n.tree.hold.Load(); hold != nil {
		(*hold)()
	}
	t := n.collectTree(n.ctx, budget, hops)
	n.writeTreeAnswer(st, treeAnswerOK, encodeTree(t, n.treeAnswerMax()))
}

func (n *Node) writeTreeAnswer(st *yamux.Stream, code byte, body []byte) {
	b := make([]byte, 5, 5+len(body))
	b[0] = code
	binary.BigEndian.PutUint32(b[1:], uint32(len(body)))
	b = append(b, body...)
	_ = st.SetWriteDeadline(time.Now().Add(n.tuning().WriteTimeout))
	_, _ = st.Write(b)
}

// encodeTreeQuery is the query after the stream type: the time the asker
// waits, in milliseconds, and the levels that may still be asked below.
func encodeTreeQuery(budget time.Duration, hops int) []byte {
	b := []byte{streamTree, 0, 0, 0, 0, byte(hops)}
	binary.BigEndian.PutUint32(b[1:5], uint32(budget.Milliseconds()))
	return b
}

// readTreeQuery reads a query (the stream type byte already read).
func readTreeQuery(r io.Reader) (time.Duration, int, error) {
	var b [5]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, 0, err
	}
	budget := time.Duration(binary.BigEndian.Uint32(b[:4])) * time.Millisecond
	if budget <= 0 {
		return 0, 0, fmt.Errorf("%w: tree query with no time", ErrBadControl)
	}
	return budget, int(b[4]), nil
}

// encodeTree encodes t as JSON in at most max bytes: when it is over, the
// levels below its children are left out, then its children, then its
// links, each cut marked Truncated.
func encodeTree(t TreeNode, max int) []byte {
	b, _ := json.Marshal(t)
	if len(b) <= max {
		return b
	}
	kids := make([]TreeNode, len(t.Children))
	for i, c := range t.Children {
		if len(c.Children) > 0 {
			c.Children, c.Truncated = nil, true
		}
		kids[i] = c
	}
	t.Children = kids
	if b, _ = json.Marshal(t); len(b) <= max {
		return b
	}
	t.Children, t.Truncated = nil, true
	t.Detail = fmt.Sprintf("children left out: the answer was over %d bytes", max)
	if b, _ = json.Marshal(t); len(b) <= max {
		return b
	}
	t.Links = nil
	t.Detail = fmt.Sprintf("children and links left out: the answer was over %d bytes", max)
	b, _ = json.Marshal(t)
	return b
}
