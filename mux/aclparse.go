package mux

import (
	"fmt"
	"net/netip"
	"path"
	"strconv"
	"strings"
)

// This file reads the rules of acl.go as a configuration file writes them:
// the action, and globs, address prefixes and port ranges, each checked.

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
