package mux

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// This file chooses the parent that new sessions go up through, for a
// node with several parents: in configured order, the nearest by
// measured round trip, or spread by weight; a parent that fails is given
// up only after a while, and one that flaps is held down (damped).
// Sessions in flight stay on the link they were opened on. The settings
// are in parentpolicy.go.

// parentState is what the node keeps of one configured parent; guarded
// by n.mu.
type parentState struct {
	peer   string
	order  int
	weight int
	srtt   time.Duration // smoothed round trip; 0: not measured on this link yet
	// failing is when the link went down or a ping went unanswered; zero
	// while it answers. The parent has failed FailAfter later.
	failing time.Time
	// ready: the parent answered this link's announcement (its TELL
	// reply came), so it routes the node's labels and accepts sessions of
	// their origins, and its reply named a path to the root (or it is the
	// root); until then, and while it has no path, a new session goes
	// elsewhere if it can.
	ready      bool
	credit     int       // spread: the smooth weighted round robin's current weight
	penalty    float64   // damping penalty, as of penaltyAt
	penaltyAt  time.Time //
	suppressed bool
}

// parentSet chooses among a node's parents; guarded by n.mu.
type parentSet struct {
	pol    ParentPolicy
	list   []*parentState // in configured order
	by     map[string]*parentState
	chosen string // the parent new sessions go up through ("": none)
	// A nearest node's candidate, better than the chosen one by the
	// margin since betterSince.
	better      string
	betterSince time.Time
	spreadDesc  string // the last spread set logged
}

func newParentSet(cfg Config) *parentSet {
	ps := &parentSet{pol: cfg.Parents.withDefaults(), by: map[string]*parentState{}}
	for _, lc := range cfg.Links {
		if !lc.Parent {
			continue
		}
		w := lc.Weight
		if w == 0 {
			w = 1
		}
		st := &parentState{peer: lc.Peer, order: len(ps.list), weight: w, failing: time.Time{}}
		ps.list = append(ps.list, st)
		ps.by[lc.Peer] = st
	}
	return ps
}

// decay brings p's penalty to now.
func (ps *parentSet) decay(p *parentState, now time.Time) {
	d := ps.pol.Damping
	if p.penalty == 0 || d.Penalty == 0 {
		p.penaltyAt = now
		return
	}
	el := now.Sub(p.penaltyAt)
	if el > 0 {
		p.penalty *= math.Exp2(-float64(el) / float64(d.HalfLife))
		if p.penalty < 1e-3 {
			p.penalty = 0
		}
	}
	p.penaltyAt = now
}

// parentNews is what a change of the parent set logs once n.mu is let go.
type parentNews struct {
	lines   []func(*logrus.Entry)
	changed bool // the chosen parent changed: the path to the root too
}

func (nw *parentNews) add(f func(*logrus.Entry)) { nw.lines = append(nw.lines, f) }

// up, down, pinged and missed record what happened to a parent's link.
func (ps *parentSet) up(peer string, now time.Time) {
	if p := ps.by[peer]; p != nil {
		p.failing, p.srtt, p.credit, p.ready = time.Time{}, 0, 0, false
	}
}

func (ps *parentSet) down(peer string, now time.Time, nw *parentNews) {
	p := ps.by[peer]
	if p == nil {
		return
	}
	if p.failing.IsZero() {
		p.failing = now
	}
	d := ps.pol.Damping
	if d.Penalty == 0 {
		return
	}
	ps.decay(p, now)
	// The cap keeps the hold below MaxSuppress: from the cap, the
	// penalty decays to Reuse in MaxSuppress.
	maxPen := d.Reuse * math.Exp2(float64(d.MaxSuppress)/float64(d.HalfLife))
	p.penalty = math.Min(p.penalty+d.Penalty, math.Max(maxPen, d.Suppress))
	if !p.suppressed && p.penalty >= d.Suppress {
		p.suppressed = true
		pen := p.penalty
		nw.add(func(log *logrus.Entry) {
			log.WithFields(logrus.Fields{"l": peer, "penalty": int(pen)}).
				Warnf("parent %s suppressed: its link flaps (penalty %d, reused below %d)", peer, int(pen), int(d.Reuse))
		})
	}
}

func (ps *parentSet) pinged(peer string, rtt time.Duration) {
	p := ps.by[peer]
	if p == nil {
		return
	}
	p.failing = time.Time{}
	if p.srtt == 0 {
		p.srtt = rtt
	} else {
		p.srtt += (rtt - p.srtt) / 4
	}
	if p.srtt <= 0 {
		p.srtt = 1
	}
}

func (ps *parentSet) missed(peer string, now time.Time) {
	if p := ps.by[peer]; p != nil && p.failing.IsZero() {
		p.failing = now
	}
}

// healthy: up, ready, answering its pings and not held down.
func (ps *parentSet) healthy(p *parentState, links map[string]*link) bool {
	return links[p.peer] != nil && p.ready && p.failing.IsZero() && !p.suppressed
}

// failed: down or silent for FailAfter.
func (ps *parentSet) failed(p *parentState, now time.Time) bool {
	return !p.failing.IsZero() && now.Sub(p.failing) >= ps.pol.FailAfter
}

// evaluate brings the damping to now and chooses again; what changed is
// added to nw.
func (ps *parentSet) evaluate(now time.Time, links map[string]*link, nw *parentNews) {
	d := ps.pol.Damping
	for _, p := range ps.list {
		ps.decay(p, now)
		if p.suppressed && p.penalty < d.Reuse {
			p.suppressed = false
			peer := p.peer
			nw.add(func(log *logrus.Entry) {
				log.WithField("l", peer).Infof("parent %s reused: its link stopped flapping", peer)
			})
		}
	}
	old := ps.chosen
	cur := ps.by[old]
	keep := cur != nil && !cur.suppressed && !ps.failed(cur, now)
	var next *parentState
	var why string
	switch ps.pol.Selection {
	case SelectNearest:
		next, why = ps.nearest(cur, keep, now, links)
	default:
		// ordered, and spread's parent for the path: the first healthy one
		// in order, unless the chosen one comes first and is only failing.
		for _, p := range ps.list {
			if ps.healthy(p, links) {
				next = p
				break
			}
		}
		if keep && (next == nil || cur.order < next.order) {
			next = cur
		}
		why = "first healthy parent in order"
	}
	if next == nil {
		// No healthy parent: one that is up all the same (held down, or
		// not answering its pings yet not failed) rather than none.
		for _, p := range ps.list {
			if links[p.peer] != nil {
				next, why = p, "the only parent up"
				break
			}
		}
	}
	if next == nil {
		ps.chosen = ""
	} else {
		ps.chosen = next.peer
	}
	if ps.chosen != old {
		nw.changed = true
		nw.add(ps.changeLine(old, ps.chosen, why, now, links))
	}
	if ps.pol.Selection == SelectSpread {
		ps.noteSpread(links, nw)
	}
}

// nearest chooses for a nearest node: the chosen parent while it holds,
// unless another healthy one was better by the margin for the hold.
func (ps *parentSet) nearest(cur *parentState, keep bool, now time.Time, links map[string]*link) (*parentState, string) {
	var best *parentState
	for _, p := range ps.list {
		if !ps.healthy(p, links) || (p.srtt == 0 && best != nil) {
			continue
		}
		if best == nil || best.srtt == 0 || (p.srtt != 0 && p.srtt < best.srtt) {
			best = p
		}
	}
	if !keep {
		ps.better = ""
		if best == nil {
			return nil, ""
		}
		if best.srtt == 0 {
			return best, "no round trip measured yet"
		}
		return best, fmt.Sprintf("nearest healthy parent, round trip %s", best.srtt.Round(10*time.Microsecond))
	}
	if best == nil || best == cur || best.srtt == 0 || cur.srtt == 0 || !ps.pol.NearestMargin.better(best.srtt, cur.srtt) {
		ps.better = ""
		return cur, ""
	}
	if ps.better != best.peer {
		ps.better, ps.betterSince = best.peer, now
	}
	if now.Sub(ps.betterSince) < ps.pol.NearestHold {
		return cur, ""
	}
	ps.better = ""
	return best, fmt.Sprintf("round trip %s against %s through %s, better by more than %s for %s",
		best.srtt.Round(10*time.Microsecond), cur.srtt.Round(10*time.Microsecond), cur.peer, ps.pol.NearestMargin, ps.pol.NearestHold)
}

// changeLine is the level 3 line of a change of the chosen parent.
func (ps *parentSet) changeLine(old, now string, why string, t time.Time, links map[string]*link) func(*logrus.Entry) {
	if old != "" {
		if p := ps.by[old]; p != nil {
			switch {
			case p.suppressed:
				why = old + " is suppressed; " + why
			case links[old] == nil && ps.failed(p, t):
				why = old + " is down; " + why
			case ps.failed(p, t):
				why = old + " does not answer its pings; " + why
			}
		}
	}
	return func(log *logrus.Entry) {
		if now == "" {
			log.WithField("down", old).Warn("no parent link is up")
			return
		}
		if old != "" {
			log = log.WithField("was", old)
		}
		log.WithField("l", now).Infof("active parent is now %s (%s)", now, why)
	}
}

// noteSpread logs the set of parents new sessions are spread over, when
// it changed.
func (ps *parentSet) noteSpread(links map[string]*link, nw *parentNews) {
	var parts []string
	for _, p := range ps.list {
		if ps.healthy(p, links) {
			parts = append(parts, fmt.Sprintf("%s (weight %d)", p.peer, p.weight))
		}
	}
	desc := strings.Join(parts, ", ")
	if desc == ps.spreadDesc {
		return
	}
	ps.spreadDesc = desc
	nw.add(func(log *logrus.Entry) {
		if desc == "" {
			return
		}
		log.Infof("new sessions spread over %s", desc)
	})
}

// pick is the parent link for a new session: for spread, the healthy
// parents in turn by weight; else the primary one. The caller holds n.mu.
func (ps *parentSet) pick(links map[string]*link) *link {
	if ps.pol.Selection == SelectSpread {
		// Smooth weighted round robin: every healthy parent gains its
		// weight, the one ahead is drawn and pays the total; over any run
		// of sessions each parent's share is within one session of its
		// weight's, interleaved rather than in bursts.
		total := 0
		var best *parentState
		for _, p := range ps.list {
			if !ps.healthy(p, links) {
				continue
			}
			total += p.weight
			p.credit += p.weight
			if best == nil || p.credit > best.credit {
				best = p
			}
		}
		if best != nil {
			best.credit -= total
			return links[best.peer]
		}
	}
	return ps.primary(links)
}

// primary is the parent whose path to the root is this node's, and the
// one new sessions go through unless spread: the chosen one while up;
// while that is down (failing, not yet failed), the first other healthy
// parent in order; last, any parent that is up, suppressed or not.
func (ps *parentSet) primary(links map[string]*link) *link {
	if l := links[ps.chosen]; l != nil {
		return l
	}
	for _, p := range ps.list {
		if ps.healthy(p, links) {
			return links[p.peer]
		}
	}
	for _, p := range ps.list {
		if l := links[p.peer]; l != nil {
			return l
		}
	}
	return nil
}

// tick is how often the node re-evaluates its parents.
func (ps *parentSet) tick() time.Duration {
	t := ps.pol.ProbeInterval
	if f := ps.pol.FailAfter / 4; f > 0 && f < t {
		t = f
	}
	return max(t, 10*time.Millisecond)
}
