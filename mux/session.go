package mux

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/sirupsen/logrus"
)

// Open opens a routed session from this node to service at dest and
// returns this end of it once the destination answered ok. Any other
// answer is a *StatusError (errors.Is(err, ErrNoRoute) and so on). The
// caller owns the Conn and must Close it.
//
// The session is logged like an entry's: opened at level 3 (its steps at
// level 4), and its end, closed or aborted, when the Conn is closed.
func (n *Node) Open(ctx context.Context, dest, service string) (*Conn, error) {
	c, h, err := n.open(ctx, dest, service, nil)
	if err != nil {
		n.sessionLog(h).WithError(err).Debug("open failed")
		n.outcomes.add(errOutcome(err))
		return nil, err
	}
	release := c.onClose
	c.onClose = func() {
		release()
		n.outcomes.add(connOutcome(c))
	}
	c.logOnClose = true
	c.opened = time.Now()
	c.log.Info("opened")
	return c, nil
}

// open opens a session; fields are added to its log.
func (n *Node) open(ctx context.Context, dest, service string, fields logrus.Fields) (*Conn, Header, error) {
	h := Header{ID: n.newID(), Hops: defaultHops, Origin: n.cfg.Label, Dest: dest, Service: service}
	if err := CheckLabel(service); err != nil {
		return nil, h, &StatusError{Code: StatusDenied, Node: n.cfg.Label, Reason: "bad service name: " + err.Error()}
	}
	return n.openHeader(ctx, h, fields)
}

// openHeader opens the session that h describes (a new id, this node as
// its origin, its service or destination address checked); fields are
// added to its log.
func (n *Node) openHeader(ctx context.Context, h Header, fields logrus.Fields) (*Conn, Header, error) {
	dest := h.Dest
	log := n.sessionLog(h).WithFields(fields)
	if err := CheckLabel(dest); err != nil {
		return nil, h, &StatusError{Code: StatusNoRoute, Node: n.cfg.Label, Reason: "bad destination label: " + err.Error()}
	}
	if dest == n.cfg.Label {
		return nil, h, &StatusError{Code: StatusNoRoute, Node: n.cfg.Label, Reason: "the destination is this node itself"}
	}
	if err := n.admit(h, ""); err != nil {
		return nil, h, &StatusError{Code: StatusFailed, Node: n.cfg.Label, Reason: err.Error()}
	}
	next, err := n.nextHop(dest, nil)
	if err != nil {
		n.release(h.ID)
		return nil, h, &StatusError{Code: StatusNoRoute, Node: n.cfg.Label, Reason: err.Error()}
	}
	log.WithField("to", next.cfg.Peer).Debug("route chosen")
	next, st, se := n.openOnce(ctx, next, h, nil)
	if se.Code != StatusOK {
		n.release(h.ID)
		return nil, h, se
	}
	log.WithFields(logrus.Fields{"to": next.cfg.Peer, "status": se.Code.String()}).Debug("status")
	c := newConn(next, st, h, func() { n.release(h.ID) })
	c.side, c.log = whoClient, log
	return c, h, nil
}

// openOnce opens h on l, the next hop chosen for it (from: the link it
// came on, nil for a session opened here). An open chosen for a link just
// before its peer said DRAIN (it hands its place over to a successor)
// may reach the peer after it stopped taking sessions: when such an open
// fails at that peer or on the way to it, it is opened once more on the
// hop chosen now, the successor's link. Nothing of the session went
// through before its status, so nothing is sent twice. It returns the
// link the stream is on.
func (n *Node) openOnce(ctx context.Context, l *link, h Header, from *link) (*link, *yamux.Stream, *StatusError) {
	st, se := n.openOn(ctx, l, h)
	if se.Code != StatusFailed && se.Code != StatusNoRoute || se.Node != n.cfg.Label && se.Node != l.cfg.Peer || !n.peerLeaving(l) {
		return l, st, se
	}
	again, err := n.nextHop(h.Dest, from)
	if err != nil || again == l {
		return l, st, se
	}
	n.log.WithFields(logrus.Fields{"component": "session", "id": h.IDString(), "to": again.cfg.Peer}).
		Infof("open sent again on the successor's link: %s", se.Reason)
	st, se = n.openOn(ctx, again, h)
	return again, st, se
}

// peerLeaving reports whether l's peer said it hands its place over.
func (n *Node) peerLeaving(l *link) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return l.peerDrain || l.peerHandover
}

// openOn opens a stream on l, sends the open header and waits for the
// status, within the open timeout and ctx. On success the stream is
// returned with no deadline set.
func (n *Node) openOn(ctx context.Context, l *link, h Header) (*yamux.Stream, *StatusError) {
	fail := func(code Status, format string, args ...any) (*yamux.Stream, *StatusError) {
		return nil, &StatusError{Code: code, Node: n.cfg.Label, Reason: fmt.Sprintf(format, args...)}
	}
	st, err := l.sess.OpenStream()
	if err != nil {
		return fail(StatusNoRoute, "open stream to %s: %v", l.cfg.Peer, err)
	}
	deadline := time.Now().Add(n.tuning().OpenTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = st.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = st.SetDeadline(time.Now()) })
	defer stop()
	if _, err := st.Write(h.encode()); err != nil {
		abortStream(st)
		return fail(StatusFailed, "send open header to %s: %v", l.cfg.Peer, err)
	}
	se, err := readStatus(st)
	if err != nil {
		abortStream(st)
		switch {
		case ctx.Err() != nil:
			return fail(StatusTimeout, "cancelled waiting for %s: %v", l.cfg.Peer, ctx.Err())
		case errors.Is(err, yamux.ErrTimeout):
			return fail(StatusTimeout, "no answer from %s within %s", l.cfg.Peer, n.tuning().OpenTimeout)
		case l.sess.IsClosed():
			return fail(StatusFailed, "link to %s lost during the open", l.cfg.Peer)
		}
		return fail(StatusFailed, "no status from %s: %v", l.cfg.Peer, err)
	}
	if !stop() && ctx.Err() != nil {
		abortStream(st)
		return fail(StatusTimeout, "cancelled: %v", ctx.Err())
	}
	if se.Code != StatusOK {
		abortStream(st)
		return nil, se
	}
	_ = st.SetDeadline(time.Time{})
	return st, se
}

// abortStream releases a stream that carries nothing more.
func abortStream(st *yamux.Stream) {
	_ = st.SetDeadline(time.Now())
	_ = st.Close()
}

// reply writes a status on st; for anything but ok it then closes st.
func (n *Node) reply(st *yamux.Stream, se *StatusError) error {
	_ = st.SetWriteDeadline(time.Now().Add(n.tuning().WriteTimeout))
	_, err := st.Write(encodeStatus(se))
	_ = st.SetWriteDeadline(time.Time{})
	if se.Code != StatusOK {
		abortStream(st)
	}
	return err
}

func (n *Node) sessionLog(h Header) *logrus.Entry {
	return n.log.WithFields(logrus.Fields{
		"component": "session",
		"id":        h.IDString(),
		"origin":    h.Origin,
		"dest":      h.Dest,
		"service":   h.Target(),
	})
}

// forward serves a session stream that arrived on from: it reads the open
// header, then either serves the session here (this node is the
// destination) or opens the next hop and relays the status and the bytes.
// The open runs through shallow, the bytes on this goroutine.
func (n *Node) forward(from *link, st *yamux.Stream) {
	var p forwardPlan
	shallow(func() { p = n.openForward(from, st) })
	if p.admitted {
		defer n.release(p.id)
	}
	if p.carry != nil {
		p.carry()
	}
}

// forwardPlan is what the open of a forwarded session leaves to do: the
// admission to release, and the carrying of the bytes (nil when the
// session was refused or aborted while it opened).
type forwardPlan struct {
	admitted bool
	id       uint64
	carry    func()
}

// openForward is forward's open: everything up to the bytes. It returns
// what forward does after it.
func (n *Node) openForward(from *link, st *yamux.Stream) (p forwardPlan) {
	h, err := readHeader(st)
	if err != nil {
		n.log.WithFields(logrus.Fields{"component": "session", "l": from.cfg.Peer}).WithError(err).Warn("bad open header; stream closed")
		abortStream(st)
		return
	}
	_ = st.SetReadDeadline(time.Time{})
	log := n.sessionLog(h).WithField("from", from.cfg.Peer)
	log.Debug("open received")
	refuse := func(code Status, format string, args ...any) {
		se := &StatusError{Code: code, Node: n.cfg.Label, Reason: fmt.Sprintf(format, args...)}
		log.WithField("status", code.String()).Infof("refused: %s", se.Reason)
		n.outcomes.add(statusOutcome(code))
		_ = n.reply(st, se)
	}
	if err := n.checkOrigin(from, h.Origin); err != nil {
		n.denials.note(from.cfg.Peer, log.WithError(err), "session refused: forged origin")
		refuse(StatusDenied, "%v", err)
		return
	}
	if from.retired.Load() {
		refuse(StatusNoRoute, "the link from %s is being removed from %s", from.cfg.Peer, n.cfg.Label)
		return
	}
	if err := n.admit(h, from.cfg.Peer); err != nil {
		refuse(StatusFailed, "%v", err)
		return
	}
	p.admitted, p.id = true, h.ID
	if h.Dest == n.cfg.Label {
		p.carry = n.exit(from, st, h, log)
		return
	}
	if h.Hops == 0 {
		refuse(StatusFailed, "hop limit reached")
		return
	}
	next, err := n.nextHop(h.Dest, from)
	if err != nil {
		refuse(StatusNoRoute, "%v", err)
		return
	}
	log.WithField("to", next.cfg.Peer).Debug("route chosen")
	fwd := h
	fwd.Hops--
	next, out, se := n.openOnce(n.ctx, next, fwd, from)
	if se.Code != StatusOK {
		log.WithFields(logrus.Fields{"to": next.cfg.Peer, "status": se.Code.String()}).Infof("refused: %s", se.Reason)
		n.outcomes.add(statusOutcome(se.Code))
		_ = n.reply(st, se)
		return
	}
	if err := n.reply(st, se); err != nil {
		abortStream(out)
		abortStream(st)
		log.WithError(err).Info("aborted: status not delivered back")
		n.outcomes.add(OutcomeAborted)
		return
	}
	log = log.WithField("to", next.cfg.Peer)
	log.WithField("status", se.Code.String()).Debug("status")
	log.Info("forwarded")
	start := time.Now()
	w := newRelayWatch(n, from, next, log)
	unlive := n.addLive(func(why error) {
		w.mu.Lock()
		abort := w.abort
		w.mu.Unlock()
		if abort != nil {
			abort(why)
		}
	})
	p.carry = func() {
		defer unlive()
		res := spliceRelay(st, out, n.tuning().IdleTimeout, w)
		w.logEnd(res, start)
		n.outcomes.add(w.endOutcome(res))
	}
	return p
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// checkOrigin decides whether a session that arrived on from may carry
// origin (PROTOCOL.md section 4, "Origin"): from a child, the origin must
// be the child or a label it announced; from a parent, it must not be
// this node or a label below it. Then the origin that reaches a service
// was proven on every hop, and allow lists mean something.
func (n *Node) checkOrigin(from *link, origin string) error {
	if from.cfg.Parent {
		if _, below := n.table.lookup(origin); below || origin == n.cfg.Label {
			return fmt.Errorf("origin %s is in the subtree of %s, but the session came from its parent %s", origin, n.cfg.Label, from.cfg.Peer)
		}
		return nil
	}
	if !n.table.inSubtree(from.cfg.Peer, origin) && !n.awaitAnnounced(from, origin) {
		return fmt.Errorf("origin %s is not in the subtree of the child %s it came from", origin, from.cfg.Peer)
	}
	return nil
}

// announceGrace bounds how long a session from a child waits for the
// child's announcement of its origin: the child sends it before the
// session, on the same connection, but on another stream, which this node
// may read later (a node that has just linked below it, a successor's
// link in a handover).
const announceGrace = 250 * time.Millisecond

// awaitAnnounced waits up to announceGrace, while the link is up, for
// the child of from to announce origin, and reports whether it did.
func (n *Node) awaitAnnounced(from *link, origin string) bool {
	deadline := time.Now().Add(announceGrace)
	for time.Now().Before(deadline) && !from.sess.IsClosed() {
		time.Sleep(5 * time.Millisecond)
		if n.table.inSubtree(from.cfg.Peer, origin) {
			return true
		}
	}
	return false
}
