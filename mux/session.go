package mux

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
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
	st, se := n.openOn(ctx, next, h)
	if se.Code != StatusOK {
		n.release(h.ID)
		return nil, h, se
	}
	log.WithFields(logrus.Fields{"to": next.cfg.Peer, "status": se.Code.String()}).Debug("status")
	c := newConn(next, st, h, func() { n.release(h.ID) })
	c.side, c.log = whoClient, log
	return c, h, nil
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
	out, se := n.openOn(n.ctx, next, fwd)
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

// exit serves a session whose destination is this node: it resolves the
// service, dials it (or readies its handler) and answers the status. It
// returns the carrying of the bytes (or the run of the handler), nil when
// the session was refused or aborted.
func (n *Node) exit(from *link, st *yamux.Stream, h Header, log *logrus.Entry) (carry func()) {
	refuse := func(code Status, format string, args ...any) {
		se := &StatusError{Code: code, Node: n.cfg.Label, Reason: fmt.Sprintf(format, args...)}
		log.WithField("status", code.String()).Infof("refused: %s", se.Reason)
		n.outcomes.add(statusOutcome(code))
		_ = n.reply(st, se)
	}
	if h.Addressed() {
		return n.exitAddr(from, st, h, log, refuse)
	}
	slot, ok := (*n.services.Load())[h.Service]
	if !ok {
		refuse(StatusDenied, "service %s is not offered by %s", h.Service, n.cfg.Label)
		return
	}
	svc := slot.svc
	addrs, err := n.policeService(svc, h, log)
	if err != nil {
		n.outcomes.add(errOutcome(err))
		_ = n.reply(st, asStatus(err))
		return
	}
	if svc.Handler != nil {
		if err := n.reply(st, &StatusError{Code: StatusOK, Node: n.cfg.Label}); err != nil {
			abortStream(st)
			n.outcomes.add(OutcomeAborted)
			return
		}
		log.WithField("status", StatusOK.String()).Debug("status")
		log.Info("opened (in process)")
		c := newConn(from, st, h, nil)
		c.side, c.log = whoTarget, log
		c.onClose = func() { n.outcomes.add(connOutcome(c)) }
		untrack := slot.conns.track(c)
		return func() {
			defer c.Close()
			defer untrack()
			start := time.Now()
			func() {
				defer n.addLive(c.Abort)()
				svc.Handler(n.ctx, c)
			}()
			_ = c.Close()
			c.logEnd(log, c.result(), start)
		}
	}
	conn, code, err := n.dialAddrs(addrs, svc.Source, log)
	if conn == nil {
		refuse(code, "dial %s: %v", h.Service, err)
		return
	}
	return n.serveDialled(from, st, h, log, conn, slot.conns.track)
}

// dialAddrs dials addrs in order and returns the first connection that
// answers; else the status that says why (refused, or timeout when a dial
// timed out) and every dial's error. source, when set, is the local
// address the dials leave from.
func (n *Node) dialAddrs(addrs []string, source string, log *logrus.Entry) (net.Conn, Status, error) {
	var errs []error
	code := StatusRefused
	for _, addr := range addrs {
		log.WithField("addr", addr).Debug("dial")
		d := sourceDialer(source, n.tuning().DialTimeout)
		c, err := dialFrom(d, func(d net.Dialer) (net.Conn, error) { return d.DialContext(n.ctx, "tcp", addr) }, source)
		if err == nil {
			return c, StatusOK, nil
		}
		log.WithField("addr", addr).WithError(err).Debug("dial failed")
		errs = append(errs, err)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && !errors.Is(err, syscall.ECONNREFUSED) {
			code = StatusTimeout
		}
	}
	return nil, code, errors.Join(errs...)
}

// serveDialled answers ok on st and returns the carrying of the session
// between st and conn, the target this node dialled, until it ends (nil
// when the status could not be answered); track, when set, registers the
// session with what it belongs to (a service). conn is closed by the
// carrying, or at once when there is none.
func (n *Node) serveDialled(from *link, st *yamux.Stream, h Header, log *logrus.Entry, conn net.Conn, track func(*Conn) func()) (carry func()) {
	if err := n.reply(st, &StatusError{Code: StatusOK, Node: n.cfg.Label}); err != nil {
		_ = conn.Close()
		abortStream(st)
		n.outcomes.add(OutcomeAborted)
		return
	}
	log = log.WithField("target", conn.RemoteAddr().String())
	log.WithField("status", StatusOK.String()).Debug("status")
	log.Info("opened")
	start := time.Now()
	c := newConn(from, st, h, nil)
	c.side, c.log = whoTarget, log
	unlive := n.addLive(c.Abort)
	untrack := func() {}
	if track != nil {
		untrack = track(c)
	}
	return func() {
		defer unlive()
		res := spliceEnd(conn, c, n.tuning().IdleTimeout, n.tuning().PeerWriteTimeout)
		untrack()
		c.logEnd(log, res, start)
		n.outcomes.add(endOutcome(res))
	}
}

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
	if !n.table.inSubtree(from.cfg.Peer, origin) {
		return fmt.Errorf("origin %s is not in the subtree of the child %s it came from", origin, from.cfg.Peer)
	}
	return nil
}
