package mux

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"
)

// routingTable is what the children of a node told it (PROTOCOL.md section
// 3): the labels each child announced, and for every label below the node
// the child whose link leads to it. It has its own lock, so that routing
// changes do not wait behind session bookkeeping. It does not believe its
// children: it refuses labels that are the node's own, its ancestors' or
// its parents', keeps the first child that announced a label, and caps
// what one link and the whole table may hold.
type routingTable struct {
	self       string // this node's label, never routed to a child
	log        *logrus.Entry
	maxPerLink int // labels one child may announce
	maxRoutes  int // labels the table may hold

	mu        sync.Mutex
	below     map[string]map[string]struct{} // labels announced by each child (refused ones left out)
	routes    map[string]string              // label -> child label that leads to it
	warned    map[string]bool                // labels told by two children or more, already warned about: only these can move to another child
	forbidden func(label string) bool        // this node's own label, its path to the root, its parents
	refused   uint64                         // announcements refused in part or whole
	parents   map[string]*link               // parent links that are up: each change of the routes goes to them

	// The served networks (netroutes.go): this node's own and those its
	// children announced, with the cap on what one child may announce.
	nets           *netTable
	maxNetsPerLink int

	// The host routes of the endpoint registry (registry.go): their own
	// cap per link, what was refused over it, and on the root the book
	// that records them (onNets, called with each change of the networks).
	maxEndpointsPerLink int
	refusedEndpoints    uint64
	root                bool
	onNets              func(up, down []NetAd)

	tieLog *refusalLog // networks served equally by two nodes, logged flood-proof

	// The networks each child link accepts (accept.go), the refusals of
	// networks outside them, logged flood-proof, and their count.
	accept      map[string]*acceptSet
	acceptLog   *refusalLog
	refusedNets uint64

	// The labels each child link accepts (acceptlabels.go), the refusals
	// of labels outside them, logged flood-proof, and their count.
	acceptLabels  map[string]*labelAcceptSet
	labelLog      *refusalLog
	refusedLabels uint64
}

// tieLogBurst is how many network ties are logged in full a minute.
const tieLogBurst = 10

func newRoutingTable(self string, log *logrus.Entry, maxPerLink, maxRoutes int) *routingTable {
	return &routingTable{
		self:       self,
		log:        log,
		maxPerLink: maxPerLink,
		maxRoutes:  maxRoutes,
		below:      map[string]map[string]struct{}{},
		routes:     map[string]string{},
		warned:     map[string]bool{},
		forbidden:  func(string) bool { return false },
		parents:    map[string]*link{},

		tieLog:         newRefusalLog(log, "networks served equally by two nodes", tieLogBurst),
		nets:           newNetTable(),
		maxNetsPerLink: maxPerLink,

		maxEndpointsPerLink: DefaultMaxEndpoints,

		accept:    map[string]*acceptSet{},
		acceptLog: newRefusalLog(log, "networks refused outside the accepted networks of their link", tieLogBurst),

		acceptLabels: map[string]*labelAcceptSet{},
		labelLog:     newRefusalLog(log, "labels refused outside the accepted labels of their link", tieLogBurst),
	}
}

// addParent registers a parent link that came up: it gets the whole
// announcement first, then the changes.
func (t *routingTable) addParent(l *link) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l.pendFull = true
	t.parents[l.cfg.Peer] = l
}

// removeParent forgets a parent link that went down.
func (t *routingTable) removeParent(label string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.parents, label)
}

// errOverCap is an announcement refused whole for a cap.
var errOverCap = errors.New("over the cap")

// replace takes a child's full announcement (TELL or WHO reply, without
// the child's own label, which the caller checked): what it announced
// before and no longer does is removed, the rest added.
func (t *routingTable) replace(child string, labels []string) (refused []string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.below[child]
	want := make(map[string]struct{}, len(labels)+1)
	want[child] = struct{}{}
	for _, l := range labels {
		want[l] = struct{}{}
	}
	var added, removed []string
	for l := range want {
		if _, had := old[l]; !had {
			added = append(added, l)
		}
	}
	for l := range old {
		if _, keep := want[l]; !keep {
			removed = append(removed, l)
		}
	}
	return t.applyLocked(child, added, removed, len(want))
}

// apply takes a child's delta.
func (t *routingTable) apply(child string, added, removed []string) (refused []string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	size := len(t.below[child])
	for _, l := range added {
		if _, had := t.below[child][l]; !had {
			size++
		}
	}
	for _, l := range removed {
		if _, had := t.below[child][l]; had {
			size--
		}
	}
	return t.applyLocked(child, added, removed, size)
}

// drop forgets everything a child announced: its link is down.
func (t *routingTable) drop(child string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var removed []string
	for l := range t.below[child] {
		removed = append(removed, l)
	}
	_, _ = t.applyLocked(child, nil, removed, 0)
	delete(t.below, child)
	t.dropNetsLocked(child)
}

// applyLocked changes what child announces by added and removed, the
// child's set having size labels afterwards, checking the caps and the
// labels first; an announcement over a cap is refused whole. It logs one
// summary line of what changed, each label at debug level, and passes
// the change upwards.
func (t *routingTable) applyLocked(child string, added, removed []string, size int) (refused []string, err error) {
	if size > t.maxPerLink {
		t.refused++
		return nil, fmt.Errorf("%w: %d labels through one link, at most %d", errOverCap, size, t.maxPerLink)
	}
	fresh := 0
	for _, l := range added {
		if _, routed := t.routes[l]; !routed {
			fresh++
		}
	}
	if len(t.routes)+fresh > t.maxRoutes {
		t.refused++
		return nil, fmt.Errorf("%w: the routing table would hold %d labels, at most %d", errOverCap, len(t.routes)+fresh, t.maxRoutes)
	}
	set := t.below[child]
	if set == nil {
		set = map[string]struct{}{}
		t.below[child] = set
	}
	// The line per label is built only at debug level: building it to
	// drop it would take a fifth of the time of taking 100,000 labels.
	debug := t.log.Logger.IsLevelEnabled(logrus.DebugLevel)
	var up, down, gone []string
	var moved map[string][]string // child the routes moved to -> labels
	for _, l := range removed {
		if _, had := set[l]; !had {
			continue
		}
		delete(set, l)
		gone = append(gone, l)
		if t.routes[l] != child {
			continue
		}
		delete(t.routes, l)
		// Only a label told by another child too can move to it. Looking
		// for that child costs a lookup per child: done for every label,
		// it would make a node that loses all of its children do work
		// quadratic in their number.
		if t.warned[l] {
			if other := t.claimantLocked(l); other != "" {
				t.routes[l] = other
				if moved == nil {
					moved = map[string][]string{}
				}
				moved[other] = append(moved[other], l)
				continue
			}
			delete(t.warned, l)
		}
		down = append(down, l)
		if debug {
			t.log.WithFields(logrus.Fields{"label": l, "via": child}).Debug("route removed")
		}
	}
	t.warnMovedLocked(child, moved)
	for _, l := range added {
		if l == t.self || t.forbidden(l) {
			refused = append(refused, l)
			continue
		}
		if _, had := set[l]; had {
			continue
		}
		if !t.labelAcceptedLocked(child, l) {
			t.refuseLabelLocked(child, l)
			continue
		}
		set[l] = struct{}{}
		if prev, routed := t.routes[l]; routed && prev != child && l == child {
			// The child's own label, proven by its link: its route,
			// whoever held it meanwhile.
			t.routes[l] = child
			t.log.WithField("l", child).Warnf("label %s is routed through its own link again (it went through %s)", l, prev)
			continue
		}
		if prev, routed := t.routes[l]; routed {
			if prev != child && !t.warned[l] {
				t.warned[l] = true
				t.log.WithField("l", child).Warnf("label %s is told by both %s and %s; keeping %s", l, prev, child, prev)
			}
			continue
		}
		t.routes[l] = child
		up = append(up, l)
		if debug {
			t.log.WithFields(logrus.Fields{"label": l, "via": child}).Debug("route added")
		}
	}
	if len(refused) > 0 {
		t.refused++
		sort.Strings(refused)
		t.log.WithFields(logrus.Fields{"l": child, "labels": firstFew(refused)}).Errorf("refused %d labels announced by child %s: its own label, an ancestor's or a parent's", len(refused), child)
	}
	if len(up) > 0 || len(down) > 0 {
		sort.Strings(up)
		sort.Strings(down)
		t.log.WithFields(logrus.Fields{"l": child, "added": firstFew(up), "removed": firstFew(down), "routes": len(t.routes)}).
			Infof("routes changed through %s: %d added, %d removed", child, len(up), len(down))
		for _, p := range t.parents {
			p.notePendingLocked(up, down)
		}
	}
	if len(gone) > 0 {
		t.dropOwnedLocked(child, gone)
	}
	return refused, nil
}

// claimantLocked is the first child, in label order, that announced l.
func (t *routingTable) claimantLocked(l string) string {
	var best string
	for c, set := range t.below {
		if _, ok := set[l]; ok && (best == "" || c < best) {
			best = c
		}
	}
	return best
}

// firstFew names up to five labels for a log line.
func firstFew(ls []string) string {
	if len(ls) <= 5 {
		return joinLabels(ls)
	}
	return joinLabels(ls[:5]) + fmt.Sprintf(",... (%d more)", len(ls)-5)
}

// lookup returns the child that leads to label.
func (t *routingTable) lookup(label string) (child string, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	child, ok = t.routes[label]
	return child, ok
}

// inSubtree reports whether label is child itself or a label it announced
// (and this node accepted), whether or not the route goes through it: a
// node below two parents sends its sessions up through either.
func (t *routingTable) inSubtree(child, label string) bool {
	if label == child {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.below[child][label]
	return ok
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

// size is how many labels the table routes.
func (t *routingTable) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.routes)
}

// tellLabelsLocked is what this node tells its parents: its own label and
// every label below it, sorted.
func (t *routingTable) tellLabelsLocked() []string {
	out := make([]string, 0, 1+len(t.routes))
	out = append(out, t.self)
	rest := make([]string, 0, len(t.routes))
	for l := range t.routes {
		rest = append(rest, l)
	}
	sort.Strings(rest)
	return append(out, rest...)
}

// Routes returns the routing table: every label known below this node and
// the child label that leads to it.
func (n *Node) Routes() map[string]string { return n.table.snapshot() }

func joinLabels(ls []string) string { return strings.Join(ls, ",") }
