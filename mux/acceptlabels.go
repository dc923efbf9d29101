package mux

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/sirupsen/logrus"
)

// This file is the labels a parent accepts from each child
// (LinkConfig.AcceptLabels, PROTOCOL.md section 3, "Accepted labels"): a
// label announced through a child link is taken only when the link
// accepts it, so that a child cannot claim another site's label, draw its
// sessions when its link drops, or open sessions in its name. The
// networks announced with a refused label as owner go with it.

// AnyLabel, as the only entry of LinkConfig.AcceptLabels, accepts every
// label the child announces.
const AnyLabel = "any"

// labelAcceptSet is what one child link accepts: every label, or the
// child's own and those matching one of pats (labels or globs).
type labelAcceptSet struct {
	any  bool
	pats []string
	text string // for the log lines
}

// parseAcceptLabels reads a link's AcceptLabels. Nil or empty accepts
// every label: the mux library's default, the daemons decide theirs.
func parseAcceptLabels(list []string) (*labelAcceptSet, error) {
	s := &labelAcceptSet{any: len(list) == 0}
	var errs []string
	for i, x := range list {
		if x == AnyLabel {
			if len(list) != 1 {
				errs = append(errs, fmt.Sprintf("accept labels %d: %q must be the only entry", i, AnyLabel))
			}
			s.any = true
			continue
		}
		if err := CheckGlob(x); err != nil {
			errs = append(errs, fmt.Sprintf("accept labels %d: %v", i, err))
			continue
		}
		if strings.Trim(x, "*?") == "" {
			errs = append(errs, fmt.Sprintf("accept labels %d: %q matches every label: write %q, as the only entry", i, x, AnyLabel))
			continue
		}
		s.pats = append(s.pats, x)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	if s.any {
		s.text = AnyLabel
	} else {
		s.text = strings.Join(s.pats, ",")
	}
	return s, nil
}

// allows reports whether the child link accepts label: the child's own,
// or one the set holds. A nil set accepts every label. The own label of
// another child link of this node (sibling) is taken only by an entry
// that names it exactly, never by a pattern or any: a node below two of
// them (a diamond) is listed on purpose, and a child cannot take a
// sibling's place through a broad pattern.
func (s *labelAcceptSet) allows(child, label string, sibling bool) bool {
	if label == child {
		return true
	}
	if sibling {
		if s != nil {
			for _, p := range s.pats {
				if p == label {
					return true
				}
			}
		}
		return false
	}
	if s == nil || s.any {
		return true
	}
	for _, p := range s.pats {
		if ok, err := path.Match(p, label); err == nil && ok {
			return true
		}
	}
	return false
}

// labelAcceptedLocked reports whether the link to child accepts label.
func (t *routingTable) labelAcceptedLocked(child, label string) bool {
	_, sibling := t.acceptLabels[label]
	return t.acceptLabels[child].allows(child, label, sibling)
}

// refuseLabelLocked logs and counts a label announced by child that its
// link does not accept: flood-proof, as the refused networks.
func (t *routingTable) refuseLabelLocked(child, label string) {
	t.refusedLabels++
	accepted := []string{child} // its own, always
	if s := t.acceptLabels[child]; s != nil {
		for _, p := range s.pats {
			if p != child {
				accepted = append(accepted, p)
			}
		}
	}
	why := fmt.Sprintf("outside the link's accept_labels (%s)", strings.Join(accepted, ","))
	t.labelLog.note(child, t.log.WithFields(logrus.Fields{"l": child, "label": label}),
		fmt.Sprintf("refused label %s announced by child %s: %s; list it in the link's accept_labels if %s is below %s", label, child, why, label, child))
}

// refuseLabelNetLocked logs a network announced by child whose owner its
// link does not accept: refused with its label, and logged flood-proof
// with the label refusals.
func (t *routingTable) refuseLabelNetLocked(child string, a NetAd) {
	t.labelLog.note(child, t.log.WithFields(logrus.Fields{"l": child, "owner": a.Owner, "network": a.Network}),
		fmt.Sprintf("refused network %s of %s announced by child %s: the link does not accept the label %s", a.Network, a.Owner, child, a.Owner))
}

// setAcceptLabels puts in force what each child link of links accepts. A
// child whose set changed loses at once the labels outside its new set
// (and their networks); the returned children are those whose set
// changed, to be asked for their whole announcement again (what was
// refused before may be taken now). The sets of children no longer
// configured stay, as the accepted networks.
func (t *routingTable) setAcceptLabels(links []LinkConfig) (changed []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.acceptLabels == nil {
		t.acceptLabels = map[string]*labelAcceptSet{}
	}
	for _, lc := range links {
		if lc.Parent {
			continue
		}
		s, err := parseAcceptLabels(lc.AcceptLabels)
		if err != nil { // Validate reported it; fail closed
			s = &labelAcceptSet{}
		}
		old, had := t.acceptLabels[lc.Peer]
		t.acceptLabels[lc.Peer] = s
		if had && old.text == s.text && old.any == s.any {
			continue
		}
		if had {
			changed = append(changed, lc.Peer)
		}
		var out []string
		for l := range t.below[lc.Peer] {
			if !t.labelAcceptedLocked(lc.Peer, l) {
				out = append(out, l)
			}
		}
		if len(out) == 0 {
			continue
		}
		sort.Strings(out)
		_, _ = t.applyLocked(lc.Peer, nil, out, len(t.below[lc.Peer])-len(out))
		t.log.WithFields(logrus.Fields{"l": lc.Peer, "accept": s.text, "labels": firstFew(out)}).
			Warnf("dropped %d labels of child %s: outside its accept_labels now", len(out), lc.Peer)
	}
	sort.Strings(changed)
	return changed
}

// RefusedLabels is how many labels announced by the children this node
// refused for lying outside their link's AcceptLabels.
func (n *Node) RefusedLabels() uint64 {
	n.table.mu.Lock()
	defer n.table.mu.Unlock()
	return n.table.refusedLabels
}

// warnMovedLocked logs at level 2 the routes that moved from child to
// another child that announces their labels too (a node below both, or a
// claim): one line for each child they moved to.
func (t *routingTable) warnMovedLocked(child string, moved map[string][]string) {
	for other, ls := range moved {
		sort.Strings(ls)
		e := t.log.WithFields(logrus.Fields{"l": other, "from": child, "labels": firstFew(ls)})
		if len(ls) == 1 {
			e.WithField("label", ls[0]).Warnf("route to %s moved from child %s to child %s, which tells it too", ls[0], child, other)
			continue
		}
		e.Warnf("routes to %d labels moved from child %s to child %s, which tells them too", len(ls), child, other)
	}
}
