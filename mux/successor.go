package mux

import (
	"net"
	"time"
)

// This file is the successor's side of PROTOCOL.md section 3.1: a node
// that took its listening sockets over from a predecessor (Config.Inherited)
// accepts its children and its entries' clients only once it can route
// their sessions.

// awaitParentFirst holds a node that took its listening sockets over from
// a predecessor from accepting links of its children on ll until one of
// its parent links is up (at most the hello timeout), so that the
// children that come over find their way up at once. A root does not
// wait, nor a listener of a parent link.
func (n *Node) awaitParentFirst(ll *linkListener) {
	if len(n.cfg.Inherited) == 0 || n.cfg.Role == RoleRoot {
		return
	}
	for _, lc := range ll.set.Load().links {
		if lc.Parent {
			return
		}
	}
	t := time.NewTimer(n.tuning().HelloTimeout)
	defer t.Stop()
	select {
	case <-n.parentUp:
	case <-t.C:
	case <-n.acceptCtx.Done():
	}
}

// listen binds addr for links, or takes the listener inherited for it.
func (n *Node) listen(addr string) (net.Listener, error) {
	if ln, ok := n.cfg.Inherited[addr]; ok {
		return ln, nil
	}
	return net.Listen("tcp", addr)
}

// awaitLinksFirst holds a node that took its listening sockets over from
// a predecessor from accepting on its entries until every configured link
// is up and every child announced what is below it (at most the hello
// timeout): the sessions of an entry need the routes its neighbours
// announce, which move to the successor with their links. Connections
// wait in the listen queue meanwhile.
func (n *Node) awaitLinksFirst() {
	if len(n.cfg.Inherited) == 0 {
		return
	}
	deadline := time.Now().Add(n.tuning().HelloTimeout)
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for time.Now().Before(deadline) {
		n.mu.Lock()
		ready := len(n.links) >= len(n.cfg.Links)
		for _, l := range n.links {
			ready = ready && (l.cfg.Parent || l.announced.Load())
		}
		n.mu.Unlock()
		if ready {
			return
		}
		select {
		case <-t.C:
		case <-n.acceptCtx.Done():
			return
		}
	}
}
