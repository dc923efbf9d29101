package mux

import (
	"net"
	"time"

	"github.com/sirupsen/logrus"
)

// This file holds the entries: the connections each entry listener accepts
// are policed and become routed sessions to the entry's destination (an
// address entry reads its client's request first: addrentry.go).

// acceptEntry accepts connections on an entry listener; each becomes a
// session in its own goroutine.
func (n *Node) acceptEntry(e *entry) {
	log := n.log.WithFields(logrus.Fields{"component": "entry", "entry": e.name, "listen": e.ln.Addr().String()})
	if e.addr != nil {
		log.Infof("listening for %s clients", e.addr.Kind)
		// A client of an address entry speaks first (its request), so one
		// that says nothing would hold a goroutine and a descriptor for
		// the open timeout: the requests and opens in progress are capped
		// like a link listener's hellos, in all and per source.
		gate := func(conn net.Conn) bool {
			if e.gate.enter(sourceOf(conn)) {
				return true
			}
			n.refusals.count(sourceOf(conn)) // in the next summary
			return false
		}
		ungate := func(conn net.Conn) { e.gate.leave(sourceOf(conn)) }
		n.awaitLinksFirst() // its clients' sessions need the routes as much
		n.acceptLoop(e.ln, log, gate, ungate, func(conn net.Conn) { n.serveAddrEntry(e, conn) })
		return
	}
	log.Infof("listening for %s at %s", e.service, e.dest)
	n.awaitLinksFirst()
	n.acceptLoop(e.ln, log, nil, nil, func(conn net.Conn) { n.serveEntry(e, conn) })
}

// serveEntry carries one accepted connection as a session. It closes conn.
func (n *Node) serveEntry(e *entry, conn net.Conn) {
	defer func() {
		if r := recover(); r != nil {
			n.log.WithField("component", "entry").Errorf("panic serving %s: %v\n%s", conn.RemoteAddr(), r, stack())
			_ = conn.Close()
		}
	}()
	var carry func()
	shallow(func() { carry = n.openEntry(e, conn) })
	if carry != nil {
		carry()
	}
}

// openEntry is serveEntry's open, run through shallow: everything up to
// the bytes. It returns the carrying of the bytes, nil when the open
// failed (conn is closed then).
func (n *Node) openEntry(e *entry, conn net.Conn) (carry func()) {
	if err := n.policeClient(e, conn); err != nil {
		n.outcomes.add(errOutcome(err))
		abortConn(conn) // denied by the entry's rules, and logged so
		return
	}
	n.noteClient(conn)
	c, h, err := n.open(n.ctx, e.dest, e.service, logrus.Fields{"entry": e.name, "client": conn.RemoteAddr().String()})
	log := n.sessionLog(h).WithFields(logrus.Fields{"entry": e.name, "client": conn.RemoteAddr().String()})
	if err != nil {
		log.WithError(err).Error("open failed")
		n.outcomes.add(errOutcome(err))
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = conn.Close()
		return
	}
	log.Info("opened")
	start := time.Now()
	unlive := n.addLive(c.Abort)
	untrack := e.conns.track(c)
	return func() {
		defer unlive()
		res := spliceEnd(conn, c, n.tuning().IdleTimeout, n.tuning().PeerWriteTimeout)
		untrack()
		c.logEnd(log, res, start)
		n.outcomes.add(endOutcome(res))
	}
}
