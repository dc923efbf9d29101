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
// session before it dials. Every denial is counted in Stats.DeniedByRules
// and logged at level 3 with the rule that decided, flood-proof: the first
// Tuning.RefusalLogBurst a minute in full, the rest in one summary line
// with their top sources (a client's address, an origin label).

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
// becomes a session, if its rules allow the client. Before Serve, or while
// the node serves (a reconfiguration; see RemoveEntry, which removes every
// listener of a name). The node closes ln. Several listeners may carry one
// entry (a multihomed host): add each with the same ec.
func (n *Node) AddEntryWith(ln net.Listener, ec EntryConfig) {
	n.addEntry(&entry{ln: ln, name: ec.Name, dest: ec.Dest, service: ec.Service, rules: ec.Rules})
}

// Police decides req by acl, defaultAllow deciding when no rule matches
// (a dynamic entry, whose client names the destination, denies by
// default). A denial is logged on log with the rule that decided (its
// index and where it was written), counted in Stats.DeniedByRules, and
// returned as a *StatusError with StatusDenied; what names what was asked
// ("destination 10.1.2.3:22 for client 192.0.2.7").
func (n *Node) Police(acl ACL, req ACLRequest, defaultAllow bool, what string, log *logrus.Entry) error {
	allow, rule := acl.Decide(req, defaultAllow)
	if allow {
		return nil
	}
	return n.denied(acl, rule, what, policeSource(req), log)
}

// policeSource names who asked, for the summary of denials.
func policeSource(req ACLRequest) string {
	if req.Source.IsValid() {
		return req.Source.String()
	}
	return req.Origin
}

// denied logs and counts a denial by rule of acl (-1: by default).
func (n *Node) denied(acl ACL, rule int, what, source string, log *logrus.Entry) error {
	f := logrus.Fields{"status": StatusDenied.String(), "rule": rule}
	if rule >= 0 && rule < len(acl) && acl[rule].Where != "" {
		f["where"] = acl[rule].Where
	}
	return n.deny(fmt.Sprintf("%s: denied by %s", what, acl.describe(rule)), source, log.WithFields(f))
}

// deny logs and counts a denial for reason and returns it as a status.
func (n *Node) deny(reason, source string, log *logrus.Entry) error {
	n.ruleLog.note(source, log.WithField("status", StatusDenied.String()), "refused: "+reason)
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
			return n.deny(fmt.Sprintf("%s may not use service %s: not in its allow list", h.Origin, h.Service), h.Origin, log)
		}
		return nil
	}
	if svc.Handler != nil || len(svc.Rules) == 0 {
		if allow, rule := svc.Rules.Decide(req, true); rule >= 0 {
			if !allow {
				return nil, n.denied(svc.Rules, rule, what, h.Origin, log)
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
	if r := svc.Rules[firstDeny]; len(r.Nets) > 0 || len(r.Hosts) > 0 || len(r.Ports) > 0 {
		// The rule looked at the address: name the first (each was denied).
		what += " at " + svc.Addrs[0]
	}
	return nil, n.denied(svc.Rules, firstDeny, what, h.Origin, log)
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

// policeAddrClient decides on the request of a client conn of the entry e
// that takes the destination from its client, once h names the
// destination and the node chosen for it (h.Dest; "" when none serves
// it): over the destination, the client's source address and h.Dest.
// Such an entry denies by default: a request no rule matches is logged
// as a default deny, with the entry and where it is written.
func (n *Node) policeAddrClient(e *entry, conn net.Conn, h Header) error {
	log := n.log.WithFields(logrus.Fields{"component": "entry", "entry": e.name, "client": conn.RemoteAddr().String()})
	req := ACLRequest{Origin: n.cfg.Label, Host: h.DestHost, Port: h.DestPort, Dest: h.Dest}
	if ap, err := netip.ParseAddrPort(conn.RemoteAddr().String()); err == nil {
		req.Source = ap.Addr().Unmap()
	}
	what := fmt.Sprintf("destination %s for client %s of entry %s", hostPort(h.DestHost, h.DestPort), sourceOf(conn), e.name)
	acl := e.addr.Rules
	allow, rule := acl.Decide(req, false)
	switch {
	case allow:
		return nil
	case rule >= 0:
		return n.denied(acl, rule, what, policeSource(req), log)
	}
	f := logrus.Fields{"status": StatusDenied.String(), "rule": -1}
	at := ""
	if e.addr.Where != "" {
		f["where"] = e.addr.Where
		at = " at " + e.addr.Where
	}
	reason := fmt.Sprintf("%s: denied by default deny (no rule of entry %s%s matched)", what, e.name, at)
	return n.deny(reason, policeSource(req), log.WithFields(f))
}

// policeServed decides, by the node's rules on the networks it serves
// (Config.ServesRules), on a session of the address form that this node
// is to dial: over its origin and its destination. When no rule matches,
// the destination is allowed.
func (n *Node) policeServed(h Header, log *logrus.Entry) error {
	if len(n.cfg.ServesRules) == 0 {
		return nil
	}
	if log == nil {
		log = n.log.WithField("component", "session")
	}
	req := ACLRequest{Origin: h.Origin, Host: h.DestHost, Port: h.DestPort, Dest: n.cfg.Label}
	what := fmt.Sprintf("destination %s for %s", hostPort(h.DestHost, h.DestPort), h.Origin)
	return n.Police(n.cfg.ServesRules, req, true, what, log)
}
