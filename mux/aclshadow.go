package mux

import (
	"net/netip"
	"strings"
)

// This file finds the rules of acl.go that can never match: an earlier
// rule matches everything they match. Configuration checks report them.

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
