package mux

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"
)

// routingTable is what the children of a node told it (PROTOCOL.md section
// 3): the labels each child announced, and for every label below the node
// the child whose link leads to it. It has its own lock, so that routing
// changes do not wait behind session bookkeeping.
type routingTable struct {
	self string // this node's label, never routed to a child
	log  *logrus.Entry

	mu     sync.Mutex
	below  map[string][]string // labels told by each child, by child label
	routes map[string]string   // label -> child label that leads to it
	warned map[string]bool     // oddities already logged, so each is logged once
}

func newRoutingTable(self string, log *logrus.Entry) *routingTable {
	return &routingTable{
		self:   self,
		log:    log,
		below:  map[string][]string{},
		routes: map[string]string{},
	}
}

// set records the labels a child told (nil: the child is gone) and reports
// whether the table changed.
func (t *routingTable) set(child string, labels []string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if labels == nil {
		if _, had := t.below[child]; !had {
			return false
		}
		delete(t.below, child)
	} else {
		t.below[child] = labels
	}
	return t.recomputeLocked()
}

// lookup returns the child that leads to label.
func (t *routingTable) lookup(label string) (child string, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	child, ok = t.routes[label]
	return child, ok
}

// snapshot returns a copy of the routes.
func (t *routingTable) snapshot() map[string]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]string, len(t.routes))
	for k, v := range t.routes {
		out[k] = v
	}
	return out
}

// tellLabels is what this node tells its parents: its own label and every
// label below it, sorted.
func (t *routingTable) tellLabels() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, 1+len(t.routes))
	out = append(out, t.self)
	rest := make([]string, 0, len(t.routes))
	for l := range t.routes {
		rest = append(rest, l)
	}
	sort.Strings(rest)
	return append(out, rest...)
}

// recomputeLocked rebuilds the routes from what the children told, logs
// what changed and reports whether anything did.
func (t *routingTable) recomputeLocked() bool {
	children := make([]string, 0, len(t.below))
	for c := range t.below {
		children = append(children, c)
	}
	sort.Strings(children)
	routes := map[string]string{}
	odd := map[string]bool{}
	for _, c := range children {
		for _, l := range t.below[c] {
			switch prev, dup := routes[l]; {
			case l == t.self:
				key := c + " tells " + l
				if odd[key] = true; !t.warned[key] {
					t.log.WithField("l", c).Warnf("child tells this node's own label %s; ignored", l)
				}
			case dup:
				key := l + " by " + prev + " and " + c
				if odd[key] = true; !t.warned[key] {
					t.log.WithField("l", c).Warnf("label %s is told by both %s and %s; using %s", l, prev, c, prev)
				}
			default:
				routes[l] = c
			}
		}
	}
	t.warned = odd
	changed := false
	for l, via := range routes {
		if old, ok := t.routes[l]; !ok || old != via {
			t.log.WithFields(logrus.Fields{"label": l, "via": via}).Info("route added")
			changed = true
		}
	}
	for l, via := range t.routes {
		if _, ok := routes[l]; !ok {
			t.log.WithFields(logrus.Fields{"label": l, "via": via}).Info("route removed")
			changed = true
		}
	}
	t.routes = routes
	return changed
}

// activeParentLocked is the first configured parent whose link is up.
// The caller holds n.mu.
func (n *Node) activeParentLocked() *link {
	for _, lc := range n.cfg.Links {
		if lc.Parent {
			if l := n.links[lc.Peer]; l != nil {
				return l
			}
		}
	}
	return nil
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
			return l, nil
		}
	}
	if from != nil && from.cfg.Parent {
		return nil, fmt.Errorf("%s is not below %s", dest, n.cfg.Label)
	}
	if p := n.activeParentLocked(); p != nil {
		return p, nil
	}
	if n.cfg.Role == RoleRoot {
		return nil, fmt.Errorf("%s is unknown to the root %s", dest, n.cfg.Label)
	}
	return nil, fmt.Errorf("no parent link of %s is up", n.cfg.Label)
}

// setBelow records the labels a child told (nil: the child's link is
// down) and, when the table changed, tells the parents.
func (n *Node) setBelow(child string, labels []string) {
	if n.table.set(child, labels) {
		n.tellParents()
	}
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
	for _, l := range n.links {
		if !l.cfg.Parent {
			l.wantTell()
		}
	}
	n.mu.Unlock()
	n.log.WithFields(logrus.Fields{"component": "routing", "path": joinLabels(path)}).Info("path to the root changed")
}

// tellParents asks every parent link that is up to send a TELL.
func (n *Node) tellParents() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, l := range n.links {
		if l.cfg.Parent {
			l.wantTell()
		}
	}
}

// Routes returns the routing table: every label known below this node and
// the child label that leads to it.
func (n *Node) Routes() map[string]string { return n.table.snapshot() }

// PathToRoot returns the active parent's label and its path to the root,
// as the parent last told it; empty at the root or while no parent is up.
func (n *Node) PathToRoot() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.path...)
}

func joinLabels(ls []string) string { return strings.Join(ls, ",") }
