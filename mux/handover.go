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
