package mux

import (
	"fmt"
	"time"
)

// This file feeds the parent set (parents.go) with what happens to the
// node's parent links, and runs its periodic re-evaluation.

// parentEvent applies f to the parent set under n.mu, chooses again, and
// then logs what changed and takes the new parent's path to the root.
func (n *Node) parentEvent(f func(ps *parentSet, now time.Time, nw *parentNews)) {
	var nw parentNews
	n.mu.Lock()
	now := time.Now()
	if f != nil {
		f(n.parents, now, &nw)
	}
	n.parents.evaluate(now, n.links, &nw)
	n.mu.Unlock()
	log := n.log.WithField("component", "routing")
	for _, line := range nw.lines {
		line(log)
	}
	n.refreshPath()
}

// parentLoop re-evaluates the parents every tick until the node aborts:
// a failing parent fails, a penalty decays, a nearer parent's hold ends.
// The tick is read again each time: a reconfiguration may change it.
func (n *Node) parentLoop() {
	for {
		n.mu.Lock()
		tick := n.parents.tick()
		n.mu.Unlock()
		t := time.NewTimer(tick)
		select {
		case <-n.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		n.parentEvent(nil)
	}
}

// probeInterval is how often the link l is pinged: the keepalive
// interval, or a parent's probe interval when a nearest or spread node
// measures its parents more often.
func (n *Node) probeInterval(l *link) time.Duration {
	iv := n.tuning().KeepAliveInterval
	n.mu.Lock()
	pol := n.parents.pol
	n.mu.Unlock()
	if l.cfg.Parent && pol.Selection != SelectOrdered && pol.ProbeInterval < iv {
		iv = pol.ProbeInterval
	}
	return iv
}

// reconfigureParents takes the parents and the parent policy of cfg (a
// reconfiguration): a parent kept keeps what was measured of it, its
// readiness and its damping. It returns the change, if any, for the
// reconfiguration's lines.
func (n *Node) reconfigureParents(cfg Config) []string {
	n.mu.Lock()
	old := n.parents
	ps := newParentSet(cfg)
	for _, p := range ps.list {
		if o := old.by[p.peer]; o != nil {
			order, weight := p.order, p.weight
			*p = *o
			p.order, p.weight = order, weight
		}
	}
	if ps.by[old.chosen] != nil {
		ps.chosen = old.chosen
	}
	ps.spreadDesc = old.spreadDesc
	n.parents = ps
	n.mu.Unlock()
	var changes []string
	if ps.pol != old.pol {
		changes = append(changes, fmt.Sprintf("parent selection %s (was %s)", ps.pol.Selection, old.pol.Selection))
	}
	n.parentEvent(nil)
	return changes
}

// ActiveParent is the parent new sessions go up through ("": none chosen);
// a spread node spreads them, and this is the parent whose path to the
// root it takes.
func (n *Node) ActiveParent() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.parents.chosen
}

// ParentPenalty is the damping penalty of the parent peer now, and
// whether it is suppressed.
func (n *Node) ParentPenalty(peer string) (float64, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.parents.by[peer]
	if p == nil {
		return 0, false
	}
	n.parents.decay(p, time.Now())
	return p.penalty, p.suppressed
}

// notePing gives a parent's ping result to the parent set.
func (n *Node) notePing(l *link, rtt time.Duration, err error) {
	n.parentEvent(func(ps *parentSet, now time.Time, _ *parentNews) {
		if n.links[l.cfg.Peer] != l {
			return // a ping of a link already gone
		}
		if err != nil {
			// An ordered node that gives parents up at once (the
			// defaults) leaves a silent link to yamux's keepalive, which
			// closes it, as before parents were chosen.
			if ps.pol.Selection != SelectOrdered || ps.pol.FailAfter > 0 {
				ps.missed(l.cfg.Peer, now)
			}
			return
		}
		ps.pinged(l.cfg.Peer, rtt)
	})
}

// parentTold records that the parent of l answered this node's
// announcement, or told a new path to the root.
func (n *Node) parentTold(l *link) {
	n.parentEvent(func(ps *parentSet, _ time.Time, _ *parentNews) {
		if p := ps.by[l.cfg.Peer]; p != nil && n.links[l.cfg.Peer] == l {
			p.ready = reachesRoot(l)
		}
	})
}

// reachesRoot reports whether the parent of l has a path to the root, as
// it last told it (the caller holds n.mu): it is the root, or its TELL
// reply named a path beyond itself. A parent cut off from the root would
// only answer "no route".
func reachesRoot(l *link) bool {
	return l.role == RoleRoot || len(l.path) > 1
}

// status adds the parent selection to a status snapshot. The caller holds
// n.mu.
func (ps *parentSet) status(s *NodeStatus, now time.Time) {
	if len(ps.list) == 0 {
		return
	}
	s.ParentSelection, s.ActiveParent = ps.pol.Selection.String(), ps.chosen
	for i := range s.Links {
		if p := ps.by[s.Links[i].Peer]; p != nil {
			ps.decay(p, now)
			s.Links[i].Suppressed, s.Links[i].Penalty = p.suppressed, p.penalty
		}
	}
}

// parentPromoted records that the successor's link s, in standby beside
// its predecessor's, became the parent's link: no flap; ready at once when
// the successor already answered this node's announcement.
func (n *Node) parentPromoted(s *link) {
	n.parentEvent(func(ps *parentSet, now time.Time, _ *parentNews) {
		if n.links[s.cfg.Peer] != s {
			return
		}
		ps.up(s.cfg.Peer, now)
		if p := ps.by[s.cfg.Peer]; p != nil {
			p.ready = reachesRoot(s)
		}
	})
}
