package mux

import (
	"fmt"

	"github.com/sirupsen/logrus"
)

// This file is where a node sends a session and how it knows its way up
// (PROTOCOL.md section 3): the next hop towards a label, down the routing
// table (routing.go) or up to a parent (parents.go), and the node's path
// to the root, as its active parent told it and as it tells its children.

// activeParentLocked is the parent whose path to the root is this node's:
// the chosen one (parents.go) while it is up, else another that is up.
// The caller holds n.mu.
func (n *Node) activeParentLocked() *link {
	return n.parents.primary(n.links)
}

// nextHop chooses the link towards dest for a session that came in on
// from (nil for a local entry). A session never goes back up to a parent
// it came from.
func (n *Node) nextHop(dest string, from *link) (*link, error) {
	child, routed := n.table.lookup(dest)
	n.mu.Lock()
	defer n.mu.Unlock()
	if routed {
		if l := n.links[child]; l != nil && l != from {
			if l.retired.Load() {
				return nil, fmt.Errorf("the link to %s, towards %s, is being removed", child, dest)
			}
			return l, nil
		}
	}
	if from != nil && from.cfg.Parent {
		return nil, fmt.Errorf("%s is not below %s", dest, n.cfg.Label)
	}
	if p := n.parents.pick(n.links); p != nil {
		return p, nil
	}
	if n.cfg.Role == RoleRoot {
		return nil, fmt.Errorf("%s is unknown to the root %s", dest, n.cfg.Label)
	}
	return nil, fmt.Errorf("no parent link of %s is up", n.cfg.Label)
}

// tellReply is the TELL reply to a child: this node's label and its path
// to the root.
func (n *Node) tellReply() ctrlMsg {
	n.mu.Lock()
	defer n.mu.Unlock()
	return ctrlMsg{Type: ctrlTellReply, Labels: append([]string{n.cfg.Label}, n.path...)}
}

// refreshPath takes the path to the root from the active parent, as that
// parent last told it.
func (n *Node) refreshPath() {
	n.mu.Lock()
	var path []string
	if p := n.activeParentLocked(); p != nil {
		path = p.path
	}
	n.mu.Unlock()
	n.setPath(path)
}

// setPath records this node's path to the root (its active parent's label
// and that parent's path) and, when it changed, tells the children.
func (n *Node) setPath(path []string) {
	n.mu.Lock()
	same := len(path) == len(n.path)
	for i := 0; same && i < len(path); i++ {
		same = path[i] == n.path[i]
	}
	if same {
		n.mu.Unlock()
		return
	}
	n.path = append([]string(nil), path...)
	anc := make(map[string]bool, len(path))
	for _, l := range path {
		anc[l] = true
	}
	n.ancestors.Store(&anc)
	for _, l := range n.links {
		if !l.cfg.Parent {
			l.wantTell()
		}
	}
	n.mu.Unlock()
	n.log.WithFields(logrus.Fields{"component": "routing", "path": joinLabels(path)}).Info("path to the root changed")
}

// PathToRoot returns the active parent's label and its path to the root,
// as the parent last told it; empty at the root or while no parent is up.
func (n *Node) PathToRoot() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.path...)
}
