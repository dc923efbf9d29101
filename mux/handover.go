package mux

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// This file is PROTOCOL.md section 3.1: handing a node's place over to a
// successor process with the same label (a rolling upgrade), without
// dropping the sessions in flight.
//
// The node handing over (the predecessor) gives its listening sockets to
// the successor (HandOver), tells its parents HANDOVER (a successor's link
// may come up beside this one: keep routing through this one) and its
// children DRAIN (take the successor's link for new sessions: dial it if
// you dial). Once every child answered (DRAIN reply) or its link ended,
// Drain tells the parents DRAIN, and waits for their answers and for the
// sessions in flight to end. A neighbour keeps the predecessor's link for
// the sessions on it until it ends.

// ListenerFile is a listening socket handed to a successor process: Addr
// is the address the configuration names (a link's listen address) or,
// for an entry, the address it is bound to.
type ListenerFile struct {
	Addr string
	File *os.File
}

// HandOver is the first half of handing the node's place over to a
// successor process: ListenerFiles, then BeginHandOver. The caller owns
// the files.
func (n *Node) HandOver() ([]ListenerFile, error) {
	out, err := n.ListenerFiles()
	if err != nil {
		return nil, err
	}
	if err := n.BeginHandOver(); err != nil {
		for _, lf := range out {
			_ = lf.File.Close()
		}
		return nil, err
	}
	return out, nil
}

// ListenerFiles returns a copy of each listening socket (links and
// entries) for a successor process. The node goes on accepting on them
// until BeginHandOver: a successor that fails before it is ready leaves
// the node as it was. The caller owns the files.
func (n *Node) ListenerFiles() ([]ListenerFile, error) {
	if n.handingOver.Load() {
		return nil, errors.New("the node is already handing over")
	}
	var out []ListenerFile
	add := func(addr string, ln net.Listener) error {
		fl, ok := ln.(interface{ File() (*os.File, error) })
		if !ok {
			return fmt.Errorf("listener %s cannot be handed over", addr)
		}
		f, err := fl.File()
		if err != nil {
			return fmt.Errorf("listener %s: %w", addr, err)
		}
		out = append(out, ListenerFile{Addr: addr, File: f})
		return nil
	}
	var err error
	n.lnMu.Lock()
	for _, ll := range n.listeners {
		if err = add(ll.addr, ll.ln); err != nil {
			break
		}
	}
	for _, e := range n.entries {
		if err != nil {
			break
		}
		err = add(e.ln.Addr().String(), e.ln)
	}
	n.lnMu.Unlock()
	if err != nil {
		for _, lf := range out {
			_ = lf.File.Close()
		}
		return nil, err
	}
	return out, nil
}

// BeginHandOver stops accepting on the listening sockets (the successor
// holds copies, from ListenerFiles, and accepts from now on) and dialling
// links that are down, and tells the neighbours: HANDOVER to the parents,
// DRAIN to the children. The node goes on carrying every session that
// reaches it, old or new, until Drain.
func (n *Node) BeginHandOver() error {
	if !n.handingOver.CompareAndSwap(false, true) {
		return errors.New("the node is already handing over")
	}
	// Connections wait in the listen queue until the successor accepts.
	n.stopAccept()
	n.closeListeners()
	n.log.WithField("component", "node").Infof("handing over to a successor: it accepts from now on; telling %d neighbours", len(n.Links()))
	for _, l := range n.linksNow() {
		typ := ctrlDrain
		if l.cfg.Parent {
			typ = ctrlHandover
		}
		if err := l.send(ctrlMsg{Type: typ}); err != nil {
			l.log.WithError(err).Warnf("%s not sent", typ)
		}
	}
	return nil
}

// Drain is the second half, after HandOver: it waits until every child
// answered DRAIN or its link ended, then tells the parents DRAIN, and
// waits until they answered and no session is left, or until ctx ends.
// Sessions that still reach the node meanwhile are carried. Shutdown
// comes after it. It returns how many sessions are left.
func (n *Node) Drain(ctx context.Context) int {
	if !n.handingOver.Load() {
		return n.Sessions()
	}
	log := n.log.WithField("component", "node")
	wait := func(parents bool) {
		for _, l := range n.linksNow() {
			if l.cfg.Parent != parents {
				continue
			}
			select {
			case <-l.drainReplied:
			case <-l.sess.CloseChan():
			case <-ctx.Done():
				return
			}
		}
	}
	wait(false)
	log.Info("every child took the successor's link; telling the parents")
	for _, l := range n.linksNow() {
		if l.cfg.Parent {
			if err := l.send(ctrlMsg{Type: ctrlDrain}); err != nil {
				l.log.WithError(err).Warn("DRAIN not sent")
			}
		}
	}
	wait(true)
	n.waitQuiet(ctx)
	left := n.waitSessions(ctx)
	n.handingOver.Store(false)
	return left
}

// waitQuiet waits, once every peer has said that no new session comes,
// until the links carry no stream but their control stream: a session
// its peer opened just before it said so is accepted and counted, not
// cut by the end of this process. Until ctx ends.
func (n *Node) waitQuiet(ctx context.Context) {
	for {
		quiet := true
		for _, l := range n.linksNow() {
			if !l.sess.IsClosed() && l.sess.NumStreams() > 1 {
				quiet = false
				break
			}
		}
		if quiet || !SleepCtx(ctx, 5*time.Millisecond) {
			return
		}
	}
}

// linksNow returns the links that hand over: a link a reconfiguration
// removed is left out (no successor's link takes its place; it finishes
// its sessions and closes, drainLink).
func (n *Node) linksNow() []*link {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]*link, 0, len(n.links))
	for _, l := range n.links {
		if !l.retired.Load() {
			out = append(out, l)
		}
	}
	return out
}

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

// awaitEndOrRedial waits until the link ends (false) or its peer said
// HANDOVER, or DRAIN before its successor's link came up (true: dial the
// successor).
func (l *link) awaitEndOrRedial() bool {
	select {
	case <-l.sess.CloseChan():
		return false
	case <-l.redial:
		return true
	}
}

// answerDrain tells the predecessor that no new session comes on l.
func (l *link) answerDrain() {
	if err := l.send(ctrlMsg{Type: ctrlDrainReply}); err != nil {
		l.log.WithError(err).Warn("DRAIN reply not sent")
	}
}

// handoverMsg takes a HANDOVER, DRAIN or DRAIN reply from the peer of l.
func (l *link) handoverMsg(m ctrlMsg) {
	n := l.n
	switch m.Type {
	case ctrlHandover:
		// A side that dials dials the successor now: its link waits
		// beside this one.
		n.mu.Lock()
		l.peerHandover = true
		if l.cfg.Dial != "" && !l.redialed {
			l.redialed = true
			close(l.redial)
		}
		n.mu.Unlock()
	case ctrlDrain:
		n.mu.Lock()
		l.peerDrain = true
		var s *link
		if n.links[l.cfg.Peer] == l {
			if s = n.standby[l.cfg.Peer]; s != nil {
				n.promoteLocked(s)
			} else if l.cfg.Dial != "" && !l.redialed {
				l.redialed = true
				close(l.redial)
			}
		}
		n.mu.Unlock()
		if s != nil {
			n.promoted(s)
			l.answerDrain()
		}
	case ctrlDrainReply:
		n.mu.Lock()
		if !l.replied {
			l.replied = true
			close(l.drainReplied)
		}
		n.mu.Unlock()
	}
}

// announce takes a child's announcement on l, its labels and its served
// networks: whole (TELL, WHO reply) or a delta. A superseded link's are
// ignored: its successor's link tells what is below the peer now. A
// successor's link in standby adds to what its predecessor announced and
// removes nothing, until it is promoted and asked for the whole again.
func (l *link) announce(added, removed []string, nets, netsRemoved []NetAd, whole bool) error {
	l.n.mu.Lock()
	superseded, standby := l.superseded, l.standby
	l.n.mu.Unlock()
	if whole {
		l.announced.Store(true)
	}
	t, peer := l.n.table, l.cfg.Peer
	var err error
	switch {
	case superseded:
	case standby:
		if _, err = t.apply(peer, added, nil); err == nil {
			err = t.applyNets(peer, nets, nil)
		}
	case whole:
		if _, err = t.replace(peer, added); err == nil {
			err = t.replaceNets(peer, nets)
		}
	default:
		if _, err = t.apply(peer, added, removed); err == nil {
			err = t.applyNets(peer, nets, netsRemoved)
		}
	}
	return err
}
