package mux

import (
	"fmt"
	"math/rand/v2"
)

// This file is the sessions a node carries, counted for its caps: a
// session admitted under them, released when it ends, and the ids of new
// sessions.

// admit records a new session that arrived through the link to via ("":
// opened here); it fails when the node is draining or a cap is reached.
func (n *Node) admit(h Header, via string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.draining:
		return ErrShutdown
	case len(n.sessions) >= n.tuning().MaxSessions:
		return fmt.Errorf("session limit of %d reached", n.tuning().MaxSessions)
	case via != "" && n.perLink[via] >= n.tuning().MaxSessionsPerLink:
		return fmt.Errorf("session limit of %d through the link to %s reached", n.tuning().MaxSessionsPerLink, via)
	case n.perOrigin[h.Origin] >= n.tuning().MaxSessionsPerOrigin:
		return fmt.Errorf("session limit of %d for origin %s reached", n.tuning().MaxSessionsPerOrigin, h.Origin)
	}
	if _, dup := n.sessions[h.ID]; dup {
		return fmt.Errorf("session id %s already in use here", h.IDString())
	}
	n.sessions[h.ID] = sessionRec{origin: h.Origin, via: via}
	if via != "" {
		n.perLink[via]++
	}
	n.perOrigin[h.Origin]++
	memBurst.opened()
	return nil
}

// sessionRec is what the node keeps of a session it carries, for its caps.
type sessionRec struct{ origin, via string }

func (n *Node) release(id uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	rec, ok := n.sessions[id]
	if !ok {
		return
	}
	delete(n.sessions, id)
	memBurst.closed()
	if rec.via != "" {
		if n.perLink[rec.via]--; n.perLink[rec.via] <= 0 {
			delete(n.perLink, rec.via)
		}
	}
	if n.perOrigin[rec.origin]--; n.perOrigin[rec.origin] <= 0 {
		delete(n.perOrigin, rec.origin)
	}
	if len(n.sessions) == 0 && n.idle != nil {
		close(n.idle)
		n.idle = nil
	}
}

// Sessions returns how many sessions the node carries now.
func (n *Node) Sessions() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.sessions)
}

func (n *Node) newID() uint64 {
	for {
		if id := rand.Uint64(); id != 0 {
			return id
		}
	}
}
