package mux

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/sirupsen/logrus"
)

// This file is the address form of routed sessions (PROTOCOL.md section
// 4): sessions whose destination address comes from the client of an
// entry, the node chosen by the networks it serves, and the serving
// node's own check before it dials.

// Addressed reports whether h is of the address form.
func (h Header) Addressed() bool { return h.DestHost != "" }

// Target is what the session reaches at its destination node: the service
// name, or host:port in the address form.
func (h Header) Target() string {
	if h.Addressed() {
		return net.JoinHostPort(h.DestHost, strconv.Itoa(int(h.DestPort)))
	}
	return h.Service
}

func hostPort(host string, port uint16) string {
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

// initServes parses the node's own networks (Config.Serves, checked by
// Validate) into the routing table, where they are told to the parents.
func (n *Node) initServes() {
	ads := make([]NetAd, 0, len(n.cfg.Serves))
	nets := make([]Network, 0, len(n.cfg.Serves))
	for _, s := range n.cfg.Serves {
		nw, _ := ParseNetwork(s)
		n.serves = append(n.serves, nw)
		ads = append(ads, NetAd{Owner: n.cfg.Label, Network: nw.String()})
		nets = append(nets, nw)
	}
	n.table.setServes(ads, nets)
}

// OpenAddr opens a routed session from this node to host:port. dest is
// the label of the node that serves it; "" picks that node from the
// networks announced below this node (the most specific match). The
// destination node checks host:port against its own networks and rules,
// dials it and answers; anything but ok is a *StatusError, as for Open.
// The caller owns the Conn and must Close it.
//
// The session is logged as Open's are.
func (n *Node) OpenAddr(ctx context.Context, dest, host string, port uint16) (*Conn, error) {
	c, h, err := n.openAddr(ctx, dest, host, port, nil)
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

// openAddr opens a session of the address form; fields are added to its
// log.
func (n *Node) openAddr(ctx context.Context, dest, host string, port uint16, fields logrus.Fields) (*Conn, Header, error) {
	return n.openAddrPoliced(ctx, dest, host, port, fields, nil)
}

// openAddrPoliced is openAddr with police, when set, deciding on the
// session's header once its destination node is chosen and before the
// session opens (an entry's rules). police is asked even when no node
// serves the address (h.Dest ""), and its denial comes first: a client
// the rules refuse learns nothing of the routes.
func (n *Node) openAddrPoliced(ctx context.Context, dest, host string, port uint16, fields logrus.Fields, police func(Header) error) (*Conn, Header, error) {
	h := Header{ID: n.newID(), Hops: defaultHops, Origin: n.cfg.Label, Dest: dest, DestHost: host, DestPort: port}
	fail := func(code Status, format string, args ...any) (*Conn, Header, error) {
		return nil, h, &StatusError{Code: code, Node: n.cfg.Label, Reason: fmt.Sprintf(format, args...)}
	}
	if err := CheckDestHost(host); err != nil {
		return fail(StatusFailed, "bad destination: %v", err)
	}
	if port == 0 {
		return fail(StatusFailed, "bad destination: port 0")
	}
	var noRoute error
	if dest == "" {
		owner, err := n.table.lookupNet(host, port)
		switch {
		case err != nil:
			noRoute = err
		case owner == n.cfg.Label:
			noRoute = fmt.Errorf("%s is served by %s itself: an entry does not carry sessions to its own node", hostPort(host, port), owner)
		default:
			h.Dest = owner
		}
	}
	if police != nil {
		if err := police(h); err != nil {
			return nil, h, err
		}
	}
	if noRoute != nil {
		return fail(StatusNoRoute, "%v", noRoute)
	}
	if err := n.allowDest(h, destAtEntry, nil); err != nil {
		return fail(StatusDenied, "%v", err)
	}
	return n.openHeader(ctx, h, fields)
}

// Where allowDest is asked.
const (
	destAtEntry  = iota // the entry that took the destination from its client
	destAtServer        // the node that serves it, before it dials
)

// allowDest is where a session's destination address is policed at the
// node that serves it (destAtServer), before it dials: only destinations
// in its own networks (Config.Serves), then as its own rules on them
// (Config.ServesRules) decide. An open header that names another address,
// whoever forged it, is refused with a plain error; a destination a rule
// denies is logged with the rule and counted (police.go), and returned as
// a *StatusError. At the entry that takes the destination from its
// client (destAtEntry), the entry's own rules have decided already
// (policeAddrClient): allowDest allows every address there.
func (n *Node) allowDest(h Header, at int, log *logrus.Entry) error {
	if at == destAtEntry {
		return nil
	}
	for _, nw := range n.serves {
		if nw.Matches(h.DestHost, h.DestPort) {
			if !isIP(h.DestHost) {
				return nil // a name: the rules decide on each address it resolves to (resolve.go)
			}
			return n.policeServed(h, log)
		}
	}
	if n.servesEndpoint(h.DestHost) {
		return nil
	}
	return fmt.Errorf("%s is not in the networks %s serves", hostPort(h.DestHost, h.DestPort), n.cfg.Label)
}

// exitAddr serves a session of the address form whose destination is
// this node: it checks the address (allowDest), resolves a name and
// checks each address it resolves to (resolveDest), dials it and returns
// the carrying of the bytes (nil when refused). A refused address is
// logged at level 1, flood-proof; one denied by the node's rules at level
// 3, with the rule.
func (n *Node) exitAddr(from *link, st *yamux.Stream, h Header, log *logrus.Entry, refuse func(Status, string, ...any)) (carry func()) {
	if err := n.allowDest(h, destAtServer, log); err != nil {
		var se *StatusError
		if errors.As(err, &se) { // denied by a rule, and logged so
			n.outcomes.add(errOutcome(err))
			_ = n.reply(st, se)
			return nil
		}
		n.destDenials.note(from.cfg.Peer, log.WithError(err), "session refused: destination not served here")
		refuse(StatusDenied, "%v", err)
		return
	}
	addrs := []string{hostPort(h.DestHost, h.DestPort)}
	if !isIP(h.DestHost) {
		var err error
		if addrs, err = n.resolveDest(h, log); err != nil {
			n.outcomes.add(errOutcome(err))
			_ = n.reply(st, asStatus(err))
			return nil
		}
	}
	conn, code, err := n.dialAddrs(addrs, "", log)
	if conn == nil {
		refuse(code, "dial %s: %v", hostPort(h.DestHost, h.DestPort), err)
		return
	}
	return n.serveDialled(from, st, h, log, conn, nil)
}
