package mux_test

import (
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/relaychain/relaychain/mux"
)

func mustRule(t *testing.T, s mux.ACLRuleSpec) mux.ACLRule {
	t.Helper()
	r, err := mux.ParseACLRule(s)
	if err != nil {
		t.Fatalf("parse %+v: %v", s, err)
	}
	return r
}

func TestACLFirstMatchWins(t *testing.T) {
	acl := mux.ACL{
		mustRule(t, mux.ACLRuleSpec{Action: "deny", Origins: []string{"gwp-lab-*"}}),
		mustRule(t, mux.ACLRuleSpec{Action: "allow", Nets: []string{"10.20.0.0/16"}, Ports: []string{"22", "8000-8999"}}),
		mustRule(t, mux.ACLRuleSpec{Action: "allow", Hosts: []string{"*.Site-A.example."}}),
		mustRule(t, mux.ACLRuleSpec{Action: "deny", Sources: []string{"192.0.2.0/24"}}),
		mustRule(t, mux.ACLRuleSpec{Action: "allow", Dests: []string{"gwp-site-?"}, Services: []string{"ssh"}}),
	}
	src := netip.MustParseAddr
	for _, c := range []struct {
		name  string
		req   mux.ACLRequest
		allow bool
		rule  int
	}{
		{"origin glob denies before an allowed address", mux.ACLRequest{Origin: "gwp-lab-1", Host: "10.20.1.1", Port: 22}, false, 0},
		{"net and port", mux.ACLRequest{Origin: "gwp-a", Host: "10.20.1.1", Port: 8080}, true, 1},
		{"port outside the ranges", mux.ACLRequest{Origin: "gwp-a", Host: "10.20.1.1", Port: 9000}, false, -1},
		{"address outside the net", mux.ACLRequest{Origin: "gwp-a", Host: "10.21.1.1", Port: 22}, false, -1},
		{"IPv4-mapped address in the net", mux.ACLRequest{Origin: "gwp-a", Host: "::ffff:10.20.0.9", Port: 22}, true, 1},
		{"host pattern, any case, trailing dot", mux.ACLRequest{Host: "DB1.site-a.EXAMPLE.", Port: 1}, true, 2},
		{"a name never matches a net", mux.ACLRequest{Host: "10.20.example", Port: 22}, false, -1},
		{"source denied", mux.ACLRequest{Source: src("192.0.2.7"), Dest: "gwp-site-a", Service: "ssh"}, false, 3},
		{"dest and service", mux.ACLRequest{Source: src("198.51.100.1"), Dest: "gwp-site-b", Service: "ssh"}, true, 4},
		{"unknown source does not match a source rule", mux.ACLRequest{Dest: "gwp-site-b", Service: "ssh"}, true, 4},
		{"service glob", mux.ACLRequest{Dest: "gwp-site-b", Service: "rdp"}, false, -1},
	} {
		allow, rule := acl.Decide(c.req, false)
		if allow != c.allow || rule != c.rule {
			t.Errorf("%s: Decide(%+v) = %v, rule %d; want %v, rule %d", c.name, c.req, allow, rule, c.allow, c.rule)
		}
	}
	if allow, rule := acl.Decide(mux.ACLRequest{Origin: "x"}, true); !allow || rule != -1 {
		t.Errorf("default allow: got %v, %d", allow, rule)
	}
	if allow, rule := (mux.ACL{}).Decide(mux.ACLRequest{Origin: "x"}, false); allow || rule != -1 {
		t.Errorf("empty ACL, default deny: got %v, %d", allow, rule)
	}
}

func TestParseACLRuleErrors(t *testing.T) {
	for _, c := range []struct {
		spec mux.ACLRuleSpec
		want string
	}{
		{mux.ACLRuleSpec{}, "action: missing"},
		{mux.ACLRuleSpec{Action: "permit"}, `action "permit"`},
		{mux.ACLRuleSpec{Action: "deny", Nets: []string{"10.1.0.0/8"}}, "host bits set: did you mean 10.0.0.0/8"},
		{mux.ACLRuleSpec{Action: "deny", Nets: []string{"site-a"}}, "not an address or CIDR prefix"},
		{mux.ACLRuleSpec{Action: "deny", Sources: []string{"10.0.0.0/33"}}, "sources:"},
		{mux.ACLRuleSpec{Action: "deny", Ports: []string{"0"}}, "port 0"},
		{mux.ACLRuleSpec{Action: "deny", Ports: []string{"90-80"}}, "backwards"},
		{mux.ACLRuleSpec{Action: "deny", Ports: []string{"65536"}}, "not a port"},
		{mux.ACLRuleSpec{Action: "deny", Ports: []string{"1-"}}, "not a port"},
		{mux.ACLRuleSpec{Action: "deny", Origins: []string{"[a-"}}, "origins: pattern"},
		{mux.ACLRuleSpec{Action: "deny", Hosts: []string{""}}, "hosts: empty pattern"},
	} {
		_, err := mux.ParseACLRule(c.spec)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseACLRule(%+v) = %v; want an error with %q", c.spec, err, c.want)
		}
	}
	r, err := mux.ParseACLRule(mux.ACLRuleSpec{Action: "allow", Nets: []string{"10.1.2.3", "::1"}, Ports: []string{"22", "1-65535"}})
	if err != nil {
		t.Fatal(err)
	}
	wantNets := []netip.Prefix{netip.MustParsePrefix("10.1.2.3/32"), netip.MustParsePrefix("::1/128")}
	if !r.Allow || !reflect.DeepEqual(r.Nets, wantNets) || !reflect.DeepEqual(r.Ports, [][2]uint16{{22, 22}, {1, 65535}}) {
		t.Errorf("parsed %+v", r)
	}
}

func TestACLShadowed(t *testing.T) {
	spec := func(action string, f func(*mux.ACLRuleSpec)) mux.ACLRuleSpec {
		s := mux.ACLRuleSpec{Action: action}
		f(&s)
		return s
	}
	for _, c := range []struct {
		name  string
		specs []mux.ACLRuleSpec
		want  [][2]int
	}{
		{"a rule with no condition shadows all after it", []mux.ACLRuleSpec{
			spec("deny", func(*mux.ACLRuleSpec) {}),
			spec("allow", func(s *mux.ACLRuleSpec) { s.Origins = []string{"a"} }),
		}, [][2]int{{0, 1}}},
		{"wider net and port range", []mux.ACLRuleSpec{
			spec("deny", func(s *mux.ACLRuleSpec) { s.Nets = []string{"10.0.0.0/8"}; s.Ports = []string{"1-1024"} }),
			spec("allow", func(s *mux.ACLRuleSpec) { s.Nets = []string{"10.1.0.0/16", "10.2.3.4"}; s.Ports = []string{"22", "80"} }),
			spec("allow", func(s *mux.ACLRuleSpec) { s.Nets = []string{"10.1.0.0/16"}; s.Ports = []string{"2000"} }),
			spec("allow", func(s *mux.ACLRuleSpec) { s.Nets = []string{"10.1.0.0/16"} }),
		}, [][2]int{{0, 1}}},
		{"origin globs", []mux.ACLRuleSpec{
			spec("deny", func(s *mux.ACLRuleSpec) { s.Origins = []string{"gwp-*"} }),
			spec("allow", func(s *mux.ACLRuleSpec) { s.Origins = []string{"gwp-a", "gwp-b"} }),
			spec("allow", func(s *mux.ACLRuleSpec) { s.Origins = []string{"gwp-a", "es-a"} }),
			spec("allow", func(s *mux.ACLRuleSpec) { s.Origins = []string{"gwp-?"} }),
		}, [][2]int{{0, 1}}},
		{"a net rule does not shadow a host rule", []mux.ACLRuleSpec{
			spec("deny", func(s *mux.ACLRuleSpec) { s.Nets = []string{"0.0.0.0/0"} }),
			spec("allow", func(s *mux.ACLRuleSpec) { s.Hosts = []string{"db.example"} }),
			spec("allow", func(s *mux.ACLRuleSpec) { s.Hosts = []string{"*"} }),
			spec("allow", func(s *mux.ACLRuleSpec) { s.Hosts = []string{"db.example"}; s.Sources = []string{"10.0.0.1"} }),
		}, [][2]int{{1, 3}}},
		{"narrower earlier rules shadow nothing", []mux.ACLRuleSpec{
			spec("deny", func(s *mux.ACLRuleSpec) { s.Sources = []string{"10.0.0.0/24"} }),
			spec("allow", func(s *mux.ACLRuleSpec) { s.Sources = []string{"10.0.0.0/16"} }),
			spec("allow", func(s *mux.ACLRuleSpec) { s.Sources = []string{"::/0"} }),
		}, nil},
	} {
		var acl mux.ACL
		for _, s := range c.specs {
			acl = append(acl, mustRule(t, s))
		}
		if got := acl.Shadowed(); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: Shadowed() = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestParseSource(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1":       "127.0.0.1:0",
		"127.0.0.1:40001": "127.0.0.1:40001",
		"[::1]:7":         "[::1]:7",
		"::1":             "[::1]:0",
	} {
		got, err := mux.ParseSource(in)
		if err != nil || got.String() != want {
			t.Errorf("ParseSource(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "host.example:1", "127.0.0.1:x", "127.0.0.1:70000", "fe80::1%eth0"} {
		if _, err := mux.ParseSource(bad); err == nil {
			t.Errorf("ParseSource(%q) accepted", bad)
		}
	}
}

// BenchmarkACLDecide decides a request that only the last of 20 rules
// matches: the cost of a first-match ACL per session open.
func BenchmarkACLDecide(b *testing.B) {
	var acl mux.ACL
	for i := 0; i < 19; i++ {
		r, err := mux.ParseACLRule(mux.ACLRuleSpec{Action: "deny", Origins: []string{"gwp-lab-*"},
			Nets: []string{"10." + strconv.Itoa(i) + ".0.0/16"}, Ports: []string{"22", "8000-8999"}})
		if err != nil {
			b.Fatal(err)
		}
		acl = append(acl, r)
	}
	last, _ := mux.ParseACLRule(mux.ACLRuleSpec{Action: "allow", Hosts: []string{"*.site-a.example"}})
	acl = append(acl, last)
	req := mux.ACLRequest{Origin: "gwp-site-a", Host: "db1.site-a.example", Port: 5432, Source: netip.MustParseAddr("127.0.0.1")}
	b.ReportAllocs()
	for b.Loop() {
		if allow, rule := acl.Decide(req, false); !allow || rule != 19 {
			b.Fatal(allow, rule)
		}
	}
}
