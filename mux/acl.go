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

// ACLRuleSpec is a rule as written in a configuration file, for
// ParseACLRule.
type ACLRuleSpec struct {
	Action                                                string // "allow" or "deny"
	Origins, Nets, Hosts, Ports, Sources, Dests, Services []string
	Where                                                 string
}

// ParseACLRule checks and converts a rule as written: action "allow" or
// "deny"; nets and sources as CIDR prefixes or single addresses; ports as
// "22" or "8000-8999"; origins, hosts, dests and services as globs.
func ParseACLRule(s ACLRuleSpec) (ACLRule, error) {
	r := ACLRule{Where: s.Where}
	switch s.Action {
	case "allow":
		r.Allow = true
	case "deny":
	case "":
		return r, fmt.Errorf("action: missing: allow or deny")
	default:
		return r, fmt.Errorf("action %q: want allow or deny", s.Action)
	}
	globs := func(key string, in []string, norm func(string) string) ([]string, error) {
		var out []string
		for _, g := range in {
			if err := CheckGlob(g); err != nil {
				return nil, fmt.Errorf("%s: %w", key, err)
			}
			out = append(out, norm(g))
		}
		return out, nil
	}
	same := func(s string) string { return s }
	var err error
	if r.Origins, err = globs("origins", s.Origins, same); err != nil {
		return r, err
	}
	if r.Hosts, err = globs("hosts", s.Hosts, normHost); err != nil {
		return r, err
	}
	if r.Dests, err = globs("dests", s.Dests, same); err != nil {
		return r, err
	}
	if r.Services, err = globs("services", s.Services, same); err != nil {
		return r, err
	}
	for _, n := range s.Nets {
		p, err := ParsePrefix(n)
		if err != nil {
			return r, fmt.Errorf("nets: %w", err)
		}
		r.Nets = append(r.Nets, p)
	}
	for _, n := range s.Sources {
		p, err := ParsePrefix(n)
		if err != nil {
			return r, fmt.Errorf("sources: %w", err)
		}
		r.Sources = append(r.Sources, p)
	}
	for _, p := range s.Ports {
		pr, err := ParsePortRange(p)
		if err != nil {
			return r, fmt.Errorf("ports: %w", err)
		}
		r.Ports = append(r.Ports, pr)
	}
	return r, nil
}

// CheckGlob reports whether g is a usable glob: not empty, and well formed
// for path.Match.
func CheckGlob(g string) error {
	if g == "" {
		return fmt.Errorf("empty pattern")
	}
	if _, err := path.Match(g, ""); err != nil {
		return fmt.Errorf("pattern %q: %w", g, err)
	}
	return nil
}

// ParsePrefix reads "10.0.0.0/8", "::1/128" or a single address ("10.1.2.3",
// taken as /32 or /128). The prefix must be canonical: "10.1.0.0/8" is
// refused, as its host bits would suggest a narrower rule than it is.
func ParsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		ip, err := netip.ParseAddr(s)
		if err != nil || ip.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR prefix", s)
		}
		ip = ip.Unmap()
		return netip.PrefixFrom(ip, ip.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR prefix", s)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%q: write an IPv4 prefix in IPv4 form", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set: did you mean %s?", s, p.Masked())
	}
	return p, nil
}

// ParsePortRange reads "22" or "8000-8999" (inclusive, 1 to 65535).
func ParsePortRange(s string) ([2]uint16, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	a, err1 := strconv.ParseUint(lo, 10, 16)
	b := a
	var err2 error
	if isRange {
		b, err2 = strconv.ParseUint(hi, 10, 16)
	}
	switch {
	case err1 != nil || err2 != nil:
		return [2]uint16{}, fmt.Errorf("%q is not a port or a range like 8000-8999", s)
	case a == 0 || b == 0:
		return [2]uint16{}, fmt.Errorf("%q: port 0 is not a port", s)
	case a > b:
		return [2]uint16{}, fmt.Errorf("%q: the range is backwards", s)
	}
	return [2]uint16{uint16(a), uint16(b)}, nil
}

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

// Shadowed returns, for each rule that can never match because an earlier
// rule matches everything it matches, the pair {earlier, later}. The test
// is sound but not complete: globs are compared only for equality, "*"
// and a literal the earlier glob matches, so a rule reported can never
// match, while some dead rules may go unreported.
func (a ACL) Shadowed() [][2]int {
	var out [][2]int
	for j := range a {
		for i := 0; i < j; i++ {
			if a[i].covers(&a[j]) {
				out = append(out, [2]int{i, j})
				break
			}
		}
	}
	return out
}

// covers reports whether every request r2 matches, r matches too.
func (r *ACLRule) covers(r2 *ACLRule) bool {
	if !coverGlobs(r.Origins, r2.Origins) || !coverGlobs(r.Dests, r2.Dests) || !coverGlobs(r.Services, r2.Services) {
		return false
	}
	if !coverPrefixes(r.Sources, r2.Sources) {
		return false
	}
	if len(r.Nets) > 0 || len(r.Hosts) > 0 {
		// r2 must be as narrow: every address it matches in r's nets, every
		// name in r's hosts. A rule without a destination matches any.
		if len(r2.Nets) == 0 && len(r2.Hosts) == 0 {
			return false
		}
		if len(r2.Nets) > 0 && (len(r.Nets) == 0 || !coverPrefixes(r.Nets, r2.Nets)) {
			return false
		}
		if len(r2.Hosts) > 0 && (len(r.Hosts) == 0 || !coverGlobs(r.Hosts, r2.Hosts)) {
			return false
		}
	}
	if len(r.Ports) > 0 {
		if len(r2.Ports) == 0 {
			return false
		}
		for _, p2 := range r2.Ports {
			ok := false
			for _, p := range r.Ports {
				if p[0] <= p2[0] && p2[1] <= p[1] {
					ok = true
					break
				}
			}
			if !ok {
				return false
			}
		}
	}
	return true
}

// coverGlobs: does every string matched by one of later match one of
// earlier? An empty earlier matches anything; an empty later anything too.
func coverGlobs(earlier, later []string) bool {
	if len(earlier) == 0 {
		return true
	}
	if len(later) == 0 {
		return false
	}
	for _, g2 := range later {
		ok := false
		for _, g := range earlier {
			if g == "*" || g == g2 || !hasMeta(g2) && matchGlobs([]string{g}, g2) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func hasMeta(g string) bool { return strings.ContainsAny(g, `*?[\`) }

func coverPrefixes(earlier, later []netip.Prefix) bool {
	if len(earlier) == 0 {
		return true
	}
	if len(later) == 0 {
		return false
	}
	for _, p2 := range later {
		ok := false
		for _, p := range earlier {
			if p.Addr().Is4() == p2.Addr().Is4() && p.Bits() <= p2.Bits() && p.Contains(p2.Addr()) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
