package mux

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// This file is what a reconfiguration (reconfig.go) removed, drained: a
// link closed once its sessions are done or its grace ends, and the
// sessions of an entry or a service, aborted when they outlast the grace.

// errRemoved is why a session of a removed piece was aborted.
var errRemoved = errors.New("removed by a reconfiguration")

// drainPoll is how often a removed link is looked at while it drains.
const drainPoll = 50 * time.Millisecond

// drainLink closes the retired link l once no session runs on it, or when
// grace ends, or when the node aborts what is left.
func (n *Node) drainLink(l *link, grace time.Duration) {
	log := n.log.WithFields(logrus.Fields{"component": "link", "l": l.cfg.Peer})
	end := time.NewTimer(grace)
	defer end.Stop()
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for {
		if l.sessionStreams() == 0 {
			log.Info("removed link closed: its sessions are done")
			l.close()
			return
		}
		select {
		case <-tick.C:
		case <-end.C:
			log.Warnf("removed link closed: aborting %d sessions left after the grace period", l.sessionStreams())
			l.close()
			return
		case <-l.sess.CloseChan():
			return
		case <-n.ctx.Done():
			l.close()
			return
		}
	}
}

// sessionStreams is how many streams of l carry sessions: all but the
// control stream.
func (l *link) sessionStreams() int {
	k := l.sess.NumStreams()
	l.ctrlMu.Lock()
	if l.ctrl != nil {
		k--
	}
	l.ctrlMu.Unlock()
	return max(k, 0)
}

// serviceSlot is one service in force. A reconfiguration that keeps the
// service keeps its slot; one that removes or changes it drains the slot's
// sessions.
type serviceSlot struct {
	svc   Service
	conns piece
}

// piece holds the sessions of a part of the node that a reconfiguration
// may remove (an entry, a service), to abort those that outlast the grace.
type piece struct {
	mu    sync.Mutex
	conns map[*Conn]struct{}
	gone  bool          // its grace ended: a session that comes late is aborted at once
	idle  chan struct{} // closed when the last session leaves, made by drain
}

// track records c as a session of p and returns the function that forgets
// it, to call when the session ends.
func (p *piece) track(c *Conn) (untrack func()) {
	p.mu.Lock()
	if p.gone {
		p.mu.Unlock()
		c.Abort(errRemoved)
		return func() {}
	}
	if p.conns == nil {
		p.conns = map[*Conn]struct{}{}
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		delete(p.conns, c)
		if len(p.conns) == 0 && p.idle != nil {
			close(p.idle)
			p.idle = nil
		}
		p.mu.Unlock()
	}
}

// drain waits until p has no session left, or grace ends, then aborts what
// is left; it returns early when ctx ends (the node aborts everything).
func (p *piece) drain(ctx context.Context, grace time.Duration) {
	p.mu.Lock()
	if len(p.conns) == 0 {
		p.gone = true
		p.mu.Unlock()
		return
	}
	if p.idle == nil {
		p.idle = make(chan struct{})
	}
	idle := p.idle
	p.mu.Unlock()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-idle:
	case <-t.C:
	case <-ctx.Done():
	}
	p.mu.Lock()
	p.gone = true
	left := make([]*Conn, 0, len(p.conns))
	for c := range p.conns {
		left = append(left, c)
	}
	p.mu.Unlock()
	for _, c := range left {
		c.Abort(errRemoved)
	}
}
