package mux

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/sirupsen/logrus"
)

// This file is the destination's side of a routed session (PROTOCOL.md
// section 4): the service asked for, policed, then dialled or its handler
// readied, and the ok answered before the bytes are carried.

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
// answers; else the status that says why (refused; timeout when a dial
// timed out; unresolved when a name did not resolve and no dial timed
// out) and every dial's error. source, when set, is the local
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
		var dnsErr *net.DNSError
		switch {
		case errors.As(err, &ne) && ne.Timeout() && !errors.Is(err, syscall.ECONNREFUSED):
			code = StatusTimeout
		case errors.As(err, &dnsErr) && code == StatusRefused:
			code = StatusUnresolved
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
