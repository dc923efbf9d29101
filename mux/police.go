package mux

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/sirupsen/logrus"
)

// This file applies the rules of acl.go where sessions begin and end: an
// entry decides on its client before it opens a session, a service on the
// session before it dials. Every denial is logged with the rule that
// decided and counted in Stats.DeniedByRules.

// EntryConfig is an entry: a listener whose connections become sessions
// to Service at Dest.
type EntryConfig struct {
	Name    string // appears in the logs
	Dest    string // the destination node's label
	Service string // the service at Dest
	// Rules decide on each client before its session opens, over its
	// source address, this node's label as the origin, Dest and Service;
	// when no rule matches, the client is allowed.
	Rules ACL
}

// AddEntryWith makes ln an entry as e says: every connection accepted on it
// becomes a session, if e's rules allow its client. Call before Serve; the
// node closes ln. Several listeners may carry one entry (a multihomed
// host): add each with the same e.
func (n *Node) AddEntryWith(ln net.Listener, e EntryConfig) {
	n.entries = append(n.entries, &entry{ln: ln, name: e.Name, dest: e.Dest, service: e.Service, rules: e.Rules})
}

// listenAddrs are the addresses the link is listened for on.
func (lc LinkConfig) listenAddrs() []string {
	if lc.Listen == "" {
		return nil
	}
	return append([]string{lc.Listen}, lc.ListenAlso...)
}

// Police decides req by acl, defaultAllow deciding when no rule matches.
// A denial is logged on log at level 3 with the rule that decided (its
// index and where it was written), counted in Stats.DeniedByRules, and
// returned as a *StatusError with StatusDenied; what names what was asked
// ("client 10.1.2.3 of entry ssh-a").
func (n *Node) Police(acl ACL, req ACLRequest, defaultAllow bool, what string, log *logrus.Entry) error {
	allow, rule := acl.Decide(req, defaultAllow)
	if allow {
		return nil
	}
	return n.denied(acl, rule, what, log)
}

// denied logs and counts a denial by rule of acl (-1: by default).
func (n *Node) denied(acl ACL, rule int, what string, log *logrus.Entry) error {
	n.ruleDenials.Add(1)
	f := logrus.Fields{"status": StatusDenied.String(), "rule": rule}
	if rule >= 0 && rule < len(acl) && acl[rule].Where != "" {
		f["where"] = acl[rule].Where
	}
	reason := fmt.Sprintf("%s: denied by %s", what, acl.describe(rule))
	log.WithFields(f).Infof("refused: %s", reason)
	return &StatusError{Code: StatusDenied, Node: n.cfg.Label, Reason: reason}
}

// policeClient decides on the client conn of entry e.
func (n *Node) policeClient(e *entry, conn net.Conn) error {
	if len(e.rules) == 0 {
		return nil
	}
	log := n.log.WithFields(logrus.Fields{"component": "entry", "entry": e.name, "client": conn.RemoteAddr().String()})
	req := ACLRequest{Origin: n.cfg.Label, Dest: e.dest, Service: e.service}
	if ap, err := netip.ParseAddrPort(conn.RemoteAddr().String()); err == nil {
		req.Source = ap.Addr().Unmap()
	}
	return n.Police(e.rules, req, true, fmt.Sprintf("client %s of entry %s", sourceOf(conn), e.name), log)
}

// policeService decides on a session h to svc: its rules, then its allow
// list. It returns the addresses the session may dial (all of them for a
// Handler service, when allowed), or the denial.
func (n *Node) policeService(svc Service, h Header, log *logrus.Entry) ([]string, error) {
	req := ACLRequest{Origin: h.Origin, Dest: h.Dest, Service: h.Service}
	what := fmt.Sprintf("service %s for %s", h.Service, h.Origin)
	// The allow list, after the rules: an origin in it is allowed, any
	// other denied.
	tail := func() error {
		if len(svc.Allow) > 0 && !contains(svc.Allow, h.Origin) {
			n.ruleDenials.Add(1)
			reason := fmt.Sprintf("%s may not use service %s: not in its allow list", h.Origin, h.Service)
			log.WithField("status", StatusDenied.String()).Infof("refused: %s", reason)
			return &StatusError{Code: StatusDenied, Node: n.cfg.Label, Reason: reason}
		}
		return nil
	}
	if svc.Handler != nil || len(svc.Rules) == 0 {
		if allow, rule := svc.Rules.Decide(req, true); rule >= 0 {
			if !allow {
				return nil, n.denied(svc.Rules, rule, what, log)
			}
			return svc.Addrs, nil
		}
		if err := tail(); err != nil {
			return nil, err
		}
		return svc.Addrs, nil
	}
	var ok []string
	firstDeny := -2
	for _, a := range svc.Addrs {
		allow, rule := svc.Rules.Decide(AddrRequest(req, a), true)
		if rule < 0 {
			allow = len(svc.Allow) == 0 || contains(svc.Allow, h.Origin)
		}
		if allow {
			ok = append(ok, a)
		} else if firstDeny == -2 {
			firstDeny = rule
		}
	}
	if len(ok) > 0 {
		return ok, nil
	}
	if firstDeny == -1 {
		return nil, tail()
	}
	return nil, n.denied(svc.Rules, firstDeny, what+" at "+svc.Addrs[0], log)
}

// abortConn closes a client's connection with a reset: the session it
// asked for will not be carried.
func abortConn(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// asStatus returns err's *StatusError.
func asStatus(err error) *StatusError {
	var se *StatusError
	if errors.As(err, &se) {
		return se
	}
	return &StatusError{Code: StatusFailed, Reason: err.Error()}
}
