package mux

import "context"

// This file is what is in force on a running node, which a
// reconfiguration (reconfig.go) replaces: the tuning, the services, the
// parents among the links, and the dial loops of the dialled links.

// tuning returns the tuning in force. A reconfiguration replaces it whole;
// read it once per decision.
func (n *Node) tuning() *Tuning { return n.tunp.Load() }

// applyCaps sets the caps that live in the node's parts to t's.
func (n *Node) applyCaps(t Tuning) {
	n.table.mu.Lock()
	n.table.maxPerLink, n.table.maxRoutes = t.MaxLabelsPerLink, t.MaxRoutes
	n.table.mu.Unlock()
	n.lnMu.Lock()
	for _, ll := range n.listeners {
		ll.gate.mu.Lock()
		ll.gate.max, ll.gate.perSource = t.MaxHellos, t.MaxHellosPerSource
		ll.gate.mu.Unlock()
	}
	n.lnMu.Unlock()
	// The refusal logs follow the tuning in force (refusalLog.follow).
}

// setServices puts services in force, each in a new slot.
func (n *Node) setServices(services map[string]Service) {
	m := make(map[string]*serviceSlot, len(services))
	for name, s := range services {
		m[name] = &serviceSlot{svc: s}
	}
	n.services.Store(&m)
}

// setParents records the labels of the parents among links.
func (n *Node) setParents(links []LinkConfig) {
	m := map[string]bool{}
	for _, lc := range links {
		if lc.Parent {
			m[lc.Peer] = true
		}
	}
	n.parentSet.Store(&m)
}

// configuredLocked reports whether lc is a link of the configuration in
// force: a link removed while its hello ran is not registered. The caller
// holds n.mu.
func (n *Node) configuredLocked(lc LinkConfig) bool {
	for _, c := range n.cfg.Links {
		if c.Peer == lc.Peer {
			return sameLink(c, lc)
		}
	}
	return false
}

// startDial starts the dial loop of the dialled link lc, which runs until
// the node stops accepting or a reconfiguration removes the link.
func (n *Node) startDial(lc LinkConfig) {
	ctx, stop := context.WithCancel(n.acceptCtx)
	n.mu.Lock()
	if old := n.dialStop[lc.Peer]; old != nil {
		old()
	}
	n.dialStop[lc.Peer] = stop
	n.mu.Unlock()
	if !n.spawn(func() { n.dialLoop(ctx, lc) }) {
		stop()
	}
}
