package mux

import (
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// This file is the end of a link's life: what runLink (link.go) leaves
// when the link's yamux session ends.

// endLink waits until the link l ends, then releases it: its goroutines
// (wg), its place among the links and, unless a successor's link took its
// place, its routes.
func (n *Node) endLink(l *link, wg *sync.WaitGroup, linkLog *logrus.Entry) {
	lc := l.cfg
	<-l.sess.CloseChan()
	l.close()
	l.fireLost()
	wg.Wait()

	n.mu.Lock()
	if promoted, stays := n.unregisterLocked(l); stays {
		n.mu.Unlock()
		n.afterReplaced(l, promoted)
		if promoted != nil && lc.Parent {
			n.parentPromoted(promoted)
		}
		return
	}
	if st := n.linkStates[lc.Peer]; st != nil && !l.retired.Load() {
		st.since, st.rtt = time.Now(), 0
		if n.acceptCtx.Err() == nil {
			st.lastErr = "link down"
		}
	}
	n.mu.Unlock()
	if lc.Parent {
		n.table.removeParent(lc.Peer)
	} else {
		n.rememberSubtree(lc.Peer)
		n.table.drop(lc.Peer)
	}
	linkLog.Warn("link down")
	if n.acceptCtx.Err() == nil {
		n.errs.add(lc.Peer, "link down")
	}
	if lc.Parent {
		// The parent set logs the parent now in use (l=), and why.
		n.parentEvent(func(ps *parentSet, now time.Time, nw *parentNews) { ps.down(lc.Peer, now, nw) })
	}
}
