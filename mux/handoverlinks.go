package mux

// This file is a peer's links while it hands over (PROTOCOL.md section
// 3.1, handover.go): the predecessor's link and its successor's, which
// comes up beside it in standby or in its place while the old one
// finishes its sessions, and is promoted when the predecessor drains or
// its link ends.

// successorMayLinkLocked reports whether a link from label may come up:
// none is up, or the one up is its predecessor's, handing over, and no
// successor's link is up yet. The caller holds n.mu.
func (n *Node) successorMayLinkLocked(label string) bool {
	old := n.links[label]
	// At most two links per label: a third waits until the link its
	// predecessor left finishes, so a peer repeating DRAIN cannot pile up
	// links.
	return old == nil || (old.peerHandover || old.peerDrain) && n.standby[label] == nil && n.retiring[label] == nil
}

// retireLocked marks old, a link another took the place of, as finishing
// its sessions. The caller holds n.mu.
func (n *Node) retireLocked(old *link) {
	old.superseded = true
	if n.retiring == nil {
		n.retiring = map[string]*link{}
	}
	n.retiring[old.cfg.Peer] = old
}

// registerLocked puts the new link l among the node's links: alone, in
// place of its predecessor's link when that one said DRAIN (replaced), or
// beside it when it said HANDOVER (standby: no new session goes through it
// until the predecessor says DRAIN or its link ends). The caller holds
// n.mu.
func (n *Node) registerLocked(l *link) (replaced *link, standby bool) {
	peer := l.cfg.Peer
	switch old := n.links[peer]; {
	case old == nil:
	case old.peerHandover && !old.peerDrain:
		if n.standby == nil {
			n.standby = map[string]*link{}
		}
		l.standby = true
		n.standby[peer] = l
		return nil, true
	default:
		n.retireLocked(old)
		replaced = old
	}
	n.links[peer] = l
	if l.cfg.Parent {
		n.parentUpOnce.Do(func() { close(n.parentUp) })
	}
	return replaced, false
}

// noteSuccessorLink logs how a link that came up beside or in place of a
// predecessor's took its place, and answers the predecessor's DRAIN.
func (n *Node) noteSuccessorLink(l *link, replaced *link, standby bool) {
	switch {
	case standby:
		l.log.Info("link of the successor up beside its predecessor's: new sessions go through the predecessor until it drains")
	case replaced != nil && l.cfg.Parent:
		// Answered once the successor took this node's announcement
		// (its TELL reply): it routes to this node before its
		// predecessor tells its own parents DRAIN.
		l.log.Info("link of the successor up in place of its predecessor's, which finishes its sessions")
		l.n.mu.Lock()
		l.predecessor = replaced
		l.n.mu.Unlock()
	case replaced != nil:
		l.log.Info("link of the successor up in place of its predecessor's, which finishes its sessions")
		replaced.answerDrain()
	}
}

// answerPredecessor answers the DRAIN of the predecessor's link that the
// parent link l took the place of, once.
func (l *link) answerPredecessor() {
	l.n.mu.Lock()
	p := l.predecessor
	l.predecessor = nil
	l.n.mu.Unlock()
	if p != nil {
		p.answerDrain()
	}
}

// unregisterLocked takes l out of the node's links when it ended. It
// reports whether the peer stays linked: l was a predecessor's link that
// another took the place of, or a successor's in standby, or its
// successor's link in standby takes its place now (promoted). The caller
// holds n.mu.
func (n *Node) unregisterLocked(l *link) (promoted *link, stays bool) {
	peer := l.cfg.Peer
	if n.links[peer] != l {
		if n.standby[peer] == l {
			delete(n.standby, peer)
		}
		if n.retiring[peer] == l {
			delete(n.retiring, peer)
		}
		return nil, true
	}
	delete(n.links, peer)
	if s := n.standby[peer]; s != nil {
		n.promoteLocked(s)
		return s, true
	}
	return nil, false
}

// promoteLocked makes the successor's link s in standby the peer's link.
// The caller holds n.mu and calls promoted after unlocking.
func (n *Node) promoteLocked(s *link) {
	peer := s.cfg.Peer
	if old := n.links[peer]; old != nil {
		n.retireLocked(old)
	}
	n.links[peer] = s
	delete(n.standby, peer)
	s.standby = false
	if st := n.linkStates[peer]; st != nil {
		*st = linkState{since: s.upSince, remote: s.conn.RemoteAddr().String(), conn: s.cc}
	}
}

// promoted finishes promoteLocked: a parent's link gets the whole
// announcement; a child's is asked for its whole announcement, which
// replaces what it and its predecessor announced.
func (n *Node) promoted(s *link) {
	s.log.Info("link of the successor now carries the new sessions")
	if s.cfg.Parent {
		n.table.addParent(s)
		s.wantTell()
		n.refreshPath()
		return
	}
	if err := s.send(ctrlMsg{Type: ctrlWho}); err != nil {
		s.log.WithError(err).Warn("WHO not sent")
	}
}

// afterReplaced logs the end of a link whose peer stays linked through
// another, and finishes a promotion.
func (n *Node) afterReplaced(l *link, promoted *link) {
	l.log.Info("link down; the peer's other link carries its sessions")
	if promoted != nil {
		n.promoted(promoted)
	}
}
