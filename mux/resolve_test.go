package mux_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// fakeResolver answers names from a table; a name not in it does not
// exist, a name in errs fails with that error, and a name in block waits
// for the lookup's context to end.
type fakeResolver struct {
	addrs   map[string][]string
	errs    map[string]error
	block   map[string]bool
	lookups atomic.Int64
}

func (r *fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	r.lookups.Add(1)
	if r.block[host] {
		<-ctx.Done()
		return nil, &net.DNSError{Err: ctx.Err().Error(), Name: host, IsTimeout: true}
	}
	if err := r.errs[host]; err != nil {
		return nil, err
	}
	list, ok := r.addrs[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var out []netip.Addr
	for _, a := range list {
		out = append(out, netip.MustParseAddr(a))
	}
	return out, nil
}

// A name is resolved at the node that serves it, and each address it
// resolves to is decided by that node's serves_rules before it is
// dialled: a rule's nets decide on the address, its hosts on the name;
// loopback and the other special addresses need a rule whose nets hold
// them. A refusal answers SOCKS5 reply 2 and HTTP 403, names the name,
// the address and the rule in the serving node's log, and is counted.
func TestResolvedAddressesPoliced(t *testing.T) {
	res := &fakeResolver{addrs: map[string][]string{
		"ok.a.example":     {"127.0.1.7"},
		"lo.a.example":     {"127.0.0.1"},
		"lo6.a.example":    {"::1"},
		"nine.a.example":   {"127.0.1.9"},
		"out.a.example":    {"10.1.2.3"},
		"mixed.a.example":  {"127.0.0.1", "127.0.1.7"},
		"secret.a.example": {"127.0.1.7"},
		"ok.b.example":     {"127.0.2.7"},
	}}
	aRules := mux.ACL{
		rule(t, "gwp.yaml:9", mux.ACLRuleSpec{Action: "deny", Hosts: []string{"secret.a.example"}}),
		rule(t, "gwp.yaml:10", mux.ACLRuleSpec{Action: "deny", Nets: []string{"127.0.1.9", "10.0.0.0/8"}}),
		rule(t, "gwp.yaml:11", mux.ACLRuleSpec{Action: "allow", Nets: []string{"127.0.1.0/24"}}),
		rule(t, "gwp.yaml:12", mux.ACLRuleSpec{Action: "allow", Hosts: []string{"*.a.example"}}),
	}
	at := startAddrTreeWith(t, []string{"127.0.1.0/24", "*.a.example"}, []string{"127.0.2.0/24", "*.b.example"},
		addrTreeRules{socks: allowAll, connect: allowAll, aServes: aRules, resolver: res})

	// Allowed by rule 1, whose nets hold the address: connected.
	for _, name := range []string{"ok.a.example", "mixed.a.example"} {
		conn, rep, err := muxtest.SOCKSConnect(at.socks, name, at.portA, "", "")
		if err != nil || rep != 0 {
			t.Fatalf("socks to %s: rep %d, %v; want 0", name, rep, err)
		}
		if got := readName(t, conn); got != "site-a" {
			t.Fatalf("socks to %s reached %q", name, got)
		}
		_ = conn.Close()
	}
	if got := connectStatus(t, at.connect, "ok.a.example", at.portA); got != "HTTP/1.1 200 Connection established" {
		t.Errorf("connect to ok.a.example: %q, want 200", got)
	}

	refusals := []struct {
		name, addr, log string
	}{
		{"lo.a.example", "127.0.0.1", "denied by default: 127.0.0.1 is a loopback address (only a rule of serves_rules whose nets hold it allows it; rule 3 (gwp.yaml:12), which decided, does not)"},
		{"lo6.a.example", "::1", "denied by default: ::1 is a loopback address"},
		{"nine.a.example", "127.0.1.9", "denied by rule 1 (gwp.yaml:10)"},
		{"out.a.example", "10.1.2.3", "denied by rule 1 (gwp.yaml:10)"},
	}
	for _, r := range refusals {
		if _, rep, err := muxtest.SOCKSConnect(at.socks, r.name, at.portA, "", ""); err != nil || rep != 2 {
			t.Errorf("socks to %s (%s): rep %d, %v; want 2 (not allowed)", r.name, r.addr, rep, err)
		}
		want := fmt.Sprintf("refused: destination %s:%d (resolved to %s) for root: %s", r.name, at.portA, r.addr, r.log)
		rec := at.logs["gwp-a"].waitLog(t, "the refusal of "+r.name, func(l logRecord) bool {
			return strings.Contains(l.Message, want)
		})
		if rec.Data["name"] != r.name || rec.Data["addr"] != r.addr {
			t.Errorf("refusal of %s logged with %v", r.name, rec.Data)
		}
	}
	if got := connectStatus(t, at.connect, "lo.a.example", at.portA); got != "HTTP/1.1 403 Forbidden" {
		t.Errorf("connect to lo.a.example: %q, want 403", got)
	}

	// A name that rule 0 denies, with no rule on addresses before it, is
	// denied without a lookup.
	before := res.lookups.Load()
	if _, rep, err := muxtest.SOCKSConnect(at.socks, "secret.a.example", at.portA, "", ""); err != nil || rep != 2 {
		t.Errorf("socks to secret.a.example: rep %d, %v; want 2", rep, err)
	}
	at.logs["gwp-a"].waitLog(t, "the denial of secret.a.example", func(l logRecord) bool {
		return strings.Contains(l.Message, fmt.Sprintf("refused: destination secret.a.example:%d for root: denied by rule 0 (gwp.yaml:9)", at.portA))
	})
	if got := res.lookups.Load(); got != before {
		t.Errorf("secret.a.example was looked up (%d lookups, %d before)", got, before)
	}

	// gwp-b has no rules: loopback is refused by default, whatever the
	// name.
	if _, rep, err := muxtest.SOCKSConnect(at.socks, "ok.b.example", at.portB, "", ""); err != nil || rep != 2 {
		t.Errorf("socks to ok.b.example: rep %d, %v; want 2", rep, err)
	}
	rec := at.logs["gwp-b"].waitLog(t, "the default refusal at gwp-b", func(l logRecord) bool {
		return strings.Contains(l.Message, fmt.Sprintf("refused: destination ok.b.example:%d (resolved to 127.0.2.7) for root: denied by default: 127.0.2.7 is a loopback address (only a rule of serves_rules whose nets hold it allows it)", at.portB))
	})
	if rec.Data["rule"] != -1 {
		t.Errorf("default refusal logged with %v", rec.Data)
	}

	if got := at.a.Stats().DeniedResolved; got != 5 {
		t.Errorf("gwp-a DeniedResolved = %d, want 5", got)
	}
	if got := at.a.Stats().DeniedByRules; got != 6 {
		t.Errorf("gwp-a DeniedByRules = %d, want 6", got)
	}
	if got := at.a.Status().Ended["denied"]; got != 6 {
		t.Errorf("gwp-a sessions ended denied: %d, want 6", got)
	}
	if got := at.b.Stats().DeniedResolved; got != 1 {
		t.Errorf("gwp-b DeniedResolved = %d, want 1", got)
	}
}

// A name that does not resolve at the serving node is SOCKS5 reply 4
// (host unreachable) and HTTP 502; a lookup that times out (the fake's
// answer, or the dial timeout bounding a lookup that never answers) is
// reply 4 and HTTP 504.
func TestUnresolvedName(t *testing.T) {
	res := &fakeResolver{
		errs:  map[string]error{"slow.a.example": &net.DNSError{Err: "i/o timeout", Name: "slow.a.example", IsTimeout: true}},
		block: map[string]bool{"stuck.a.example": true},
	}
	at := startAddrTreeWith(t, []string{"127.0.1.0/24", "*.a.example"}, []string{"127.0.2.0/24"},
		addrTreeRules{socks: allowAll, connect: allowAll, resolver: res})

	cases := []struct {
		name   string
		rep    byte
		http   string
		status string
	}{
		{"missing.a.example", 4, "HTTP/1.1 502 Bad Gateway", "unresolved"},
		{"slow.a.example", 4, "HTTP/1.1 504 Gateway Timeout", "timeout"},
		{"stuck.a.example", 4, "HTTP/1.1 504 Gateway Timeout", "timeout"},
	}
	for _, c := range cases {
		if _, rep, err := muxtest.SOCKSConnect(at.socks, c.name, 22, "", ""); err != nil || rep != c.rep {
			t.Errorf("socks to %s: rep %d, %v; want %d", c.name, rep, err, c.rep)
		}
		if got := connectStatus(t, at.connect, c.name, 22); got != c.http {
			t.Errorf("connect to %s: %q, want %q", c.name, got, c.http)
		}
		at.logs["root"].waitLog(t, "the entry's failure for "+c.name, func(l logRecord) bool {
			return strings.Contains(fmt.Sprint(l.Data["error"]), c.status+" (at gwp-a): resolve "+c.name)
		})
	}
	if got := at.a.Status().Ended["unresolved"]; got != 2 {
		t.Errorf("gwp-a sessions ended unresolved: %d, want 2", got)
	}
	if got := at.a.Status().Ended["timeout"]; got != 4 {
		t.Errorf("gwp-a sessions ended timeout: %d, want 4", got)
	}
	if got := res.lookups.Load(); got != 6 {
		t.Errorf("lookups: %d, want 6", got)
	}
}
