package mux_test

import (
	"strings"
	"testing"

	"github.com/relaychain/relaychain/mux"
)

// FuzzACL parses two rules from fuzzed text and decides a fuzzed request.
// Parsing must refuse or accept without panicking; a rule Shadowed says
// can never match must not match a request its earlier rule misses; and
// Decide must return the first rule that matches.
//
//	go test -run '^$' -fuzz '^FuzzACL$' -fuzztime 30s ./mux/
func FuzzACL(f *testing.F) {
	f.Add("deny", "gwp-*", "10.0.0.0/8", "*.example", "22,8000-8999", "127.0.0.0/8", "gwp-?", "ssh",
		"allow", "gwp-a", "10.1.0.0/16", "db.example", "22", "127.0.0.2", "gwp-a", "ssh",
		"gwp-a", "10.1.2.3", uint16(22), "127.0.0.2", "gwp-a", "ssh")
	f.Add("allow", "", "", "", "", "", "", "",
		"deny", "x", "::/0", "", "1-65535", "::1", "", "",
		"x", "db.example", uint16(443), "::1", "d", "s")
	f.Add("deny", "[", "10.1.0.0/8", "", "0", "", "", "",
		"permit", "", "", "", "90-80", "", "", "",
		"", "", uint16(0), "", "", "")
	f.Fuzz(func(t *testing.T, a1, o1, n1, h1, p1, s1, d1, v1, a2, o2, n2, h2, p2, s2, d2, v2, origin, host string, port uint16, source, dest, service string) {
		split := func(s string) []string {
			if s == "" {
				return nil
			}
			return strings.Split(s, ",")
		}
		var acl mux.ACL
		for _, s := range []mux.ACLRuleSpec{
			{Action: a1, Origins: split(o1), Nets: split(n1), Hosts: split(h1), Ports: split(p1), Sources: split(s1), Dests: split(d1), Services: split(v1)},
			{Action: a2, Origins: split(o2), Nets: split(n2), Hosts: split(h2), Ports: split(p2), Sources: split(s2), Dests: split(d2), Services: split(v2)},
		} {
			r, err := mux.ParseACLRule(s)
			if err != nil {
				return
			}
			acl = append(acl, r)
		}
		req := mux.ACLRequest{Origin: origin, Host: host, Port: port, Dest: dest, Service: service}
		if ap, err := mux.ParseSource(source); err == nil {
			req.Source = ap.Addr()
		}
		m0, m1 := acl[0].Matches(req), acl[1].Matches(req)
		for _, sh := range acl.Shadowed() {
			if sh != [2]int{0, 1} {
				t.Fatalf("Shadowed() = %v for two rules", acl.Shadowed())
			}
			if m1 && !m0 {
				t.Fatalf("rule 1 reported shadowed by rule 0, but it alone matches %+v:\n%+v\n%+v", req, acl[0], acl[1])
			}
		}
		allow, rule := acl.Decide(req, true)
		switch {
		case m0 && (rule != 0 || allow != acl[0].Allow),
			!m0 && m1 && (rule != 1 || allow != acl[1].Allow),
			!m0 && !m1 && (rule != -1 || !allow):
			t.Fatalf("Decide = %v, %d with matches %v, %v", allow, rule, m0, m1)
		}
	})
}
