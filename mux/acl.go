package mux

import (
	"fmt"
	"net"
	"net/netip"
	"path"
	"strconv"
	"strings"
)

// This file holds the first-match rules that police entries and services:
// each rule matches the origin label, the destination (address, host name,
// port, node and service) and, at an entry, the client's source address;
// the first rule that matches decides, allow or deny.

// ACL is an ordered list of rules; the first that matches a request
// decides it.
type ACL []ACLRule

// ACLRule is one rule. Every condition that is set must match (and); a
// condition with several values matches when one of them does (or). An
// empty condition matches anything. Nets and Hosts together are one
// condition, the destination: an IP address matches Nets, a host name
// matches Hosts. A condition a request has no value for (a client source
// at a service, a destination host at a static entry) does not match.
type ACLRule struct {
	// Allow is the action: true allows, false denies.
	Allow bool
	// Origins are globs (path.Match: *, ?, [a-z]) over the origin label.
	Origins []string
	// Nets are the destination addresses; Hosts globs over the destination
	// host name, compared without case and a trailing dot.
	Nets  []netip.Prefix
	Hosts []string
	// Ports are inclusive ranges of the destination port.
	Ports [][2]uint16
	// Sources are the client's source addresses (entries only).
	Sources []netip.Prefix
	// Dests and Services are globs over the destination node's label and
	// the service name.
	Dests, Services []string
	// Where names the rule for logs ("epproxy.yaml:40"); optional.
	Where string
}

// ACLRequest is what a rule is matched against. A zero field is not known.
type ACLRequest struct {
	Origin string     // the origin label
	Host   string     // the destination host: an IP address or a name
	Port   uint16     // the destination port
	Source netip.Addr // the client's address at an entry
	Dest   string     // the destination node's label
	// Service is the service name at Dest.
	Service string

	// Resolved names.

	// Resolved, at the node that serves a destination given by name, is
	// one address the name resolved to (resolve.go). A rule's hosts then
	// match the name and its nets this address: the destination matches
	// when either does.
	Resolved netip.Addr
}

// Decide returns whether req is allowed, and the index of the rule that
// decided (-1: no rule matched, and defaultAllow decided).
func (a ACL) Decide(req ACLRequest, defaultAllow bool) (allow bool, rule int) {
	d := parseDest(req)
	for i := range a {
		if a[i].matches(req, d) {
			return a[i].Allow, i
		}
	}
	return defaultAllow, -1
}

// dest is a request's destination host, parsed once for all the rules.
type dest struct {
	ip   netip.Addr // valid when the host is an address
	name string     // else the host name, normalised
}

func parseDest(req ACLRequest) dest {
	if ip, err := netip.ParseAddr(req.Host); err == nil {
		return dest{ip: ip}
	}
	return dest{name: normHost(req.Host)}
}

// Matches reports whether every condition of r matches req.
func (r *ACLRule) Matches(req ACLRequest) bool { return r.matches(req, parseDest(req)) }

func (r *ACLRule) matches(req ACLRequest, d dest) bool {
	if len(r.Origins) > 0 && !matchGlobs(r.Origins, req.Origin) {
		return false
	}
	if len(r.Nets) > 0 || len(r.Hosts) > 0 {
		switch {
		case req.Host == "":
			return false
		case d.ip.IsValid():
			if !matchPrefixes(r.Nets, d.ip) {
				return false
			}
		case req.Resolved.IsValid():
			if !matchGlobs(r.Hosts, d.name) && !matchPrefixes(r.Nets, req.Resolved) {
				return false
			}
		case !matchGlobs(r.Hosts, d.name):
			return false
		}
	}
	if len(r.Ports) > 0 {
		if req.Port == 0 {
			return false
		}
		ok := false
		for _, p := range r.Ports {
			if p[0] <= req.Port && req.Port <= p[1] {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(r.Sources) > 0 && (!req.Source.IsValid() || !matchPrefixes(r.Sources, req.Source)) {
		return false
	}
	if len(r.Dests) > 0 && !matchGlobs(r.Dests, req.Dest) {
		return false
	}
	if len(r.Services) > 0 && !matchGlobs(r.Services, req.Service) {
		return false
	}
	return true
}

// describe names the rule that decided, for logs: "rule 2
// (epproxy.yaml:40)", or "default (no rule matched)".
func (a ACL) describe(rule int) string {
	if rule < 0 || rule >= len(a) {
		return "default (no rule matched)"
	}
	if a[rule].Where != "" {
		return fmt.Sprintf("rule %d (%s)", rule, a[rule].Where)
	}
	return fmt.Sprintf("rule %d", rule)
}

func matchGlobs(globs []string, s string) bool {
	if s == "" {
		return false
	}
	for _, g := range globs {
		if ok, err := path.Match(g, s); err == nil && ok {
			return true
		}
	}
	return false
}

func matchPrefixes(ps []netip.Prefix, ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func normHost(h string) string { return strings.ToLower(strings.TrimSuffix(h, ".")) }

// AddrRequest fills the destination of a request from a HOST:PORT.
func AddrRequest(req ACLRequest, hostport string) ACLRequest {
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return req
	}
	req.Host = h
	if n, err := strconv.ParseUint(p, 10, 16); err == nil {
		req.Port = uint16(n)
	}
	return req
}
