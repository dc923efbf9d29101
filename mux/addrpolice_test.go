package mux_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// connectStatus sends an HTTP CONNECT for host:port with the credentials
// of the addrTree's connect entry and returns the status line it gets.
func connectStatus(t *testing.T, entry, host string, port uint16) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", entry, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	auth := "Proxy-Authorization: Basic b3BzOnMzY3JldA==\r\n" // ops:s3cret
	if _, err := fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\n%s\r\n", net.JoinHostPort(host, fmt.Sprint(port)), auth); err != nil {
		t.Fatal(err)
	}
	var line []byte
	one := make([]byte, 1)
	for len(line) < 200 {
		if _, err := io.ReadFull(c, one); err != nil || one[0] == '\n' {
			break
		}
		line = append(line, one[0])
	}
	return strings.TrimSuffix(string(line), "\r")
}

// The rules of entries that take the destination from their client: the
// first match decides over the destination, the client's source and the
// node chosen for it; no match denies; a denial answers SOCKS5 reply 2 or
// HTTP 403, names the rule in the log and is counted.
func TestAddrEntryRules(t *testing.T) {
	acl := mux.ACL{
		rule(t, "epp.yaml:30", mux.ACLRuleSpec{Action: "deny", Nets: []string{"127.0.2.7/32"}, Ports: []string{"1-65535"}}),
		rule(t, "epp.yaml:31", mux.ACLRuleSpec{Action: "allow", Dests: []string{"gwp-a"}, Sources: []string{"127.0.0.0/8"}}),
		rule(t, "epp.yaml:32", mux.ACLRuleSpec{Action: "allow", Hosts: []string{"*.nowhere.example"}}),
	}
	at := startAddrTreeWith(t, []string{"127.0.1.0/24"}, []string{"127.0.2.0/24"},
		addrTreeRules{socks: acl, connect: acl, where: "epp.yaml:25"})

	// Allowed by rule 1: the destination node chosen is gwp-a.
	conn, rep, err := muxtest.SOCKSConnect(at.socks, "127.0.1.7", at.portA, "", "")
	if err != nil || rep != 0 {
		t.Fatalf("socks to site-a: rep %d, %v", rep, err)
	}
	if got := readName(t, conn); got != "site-a" {
		t.Fatalf("socks to site-a reached %q", got)
	}
	_ = conn.Close()

	// Denied by rule 0.
	if _, rep, err := muxtest.SOCKSConnect(at.socks, "127.0.2.7", at.portB, "", ""); err != nil || rep != 2 {
		t.Fatalf("socks to site-b: rep %d, %v; want 2 (not allowed by ruleset)", rep, err)
	}
	rec := at.logs["root"].waitLog(t, "the denial by rule 0", func(r logRecord) bool {
		return strings.Contains(r.Message, fmt.Sprintf("refused: destination 127.0.2.7:%d for client 127.0.0.1 of entry socks: denied by rule 0 (epp.yaml:30)", at.portB))
	})
	if rec.Data["rule"] != 0 || rec.Data["where"] != "epp.yaml:30" || rec.Data["entry"] != "socks" {
		t.Errorf("denial logged with %v", rec.Data)
	}
	// No rule matches (site-b's node is not gwp-a): default deny.
	if _, rep, err := muxtest.SOCKSConnect(at.socks, "127.0.2.8", 1, "", ""); err != nil || rep != 2 {
		t.Fatalf("socks to 127.0.2.8: rep %d, %v; want 2", rep, err)
	}
	rec = at.logs["root"].waitLog(t, "the default deny", func(r logRecord) bool {
		return strings.Contains(r.Message, "refused: destination 127.0.2.8:1 for client 127.0.0.1 of entry socks: denied by default deny (no rule of entry socks at epp.yaml:25 matched)")
	})
	if rec.Data["rule"] != -1 || rec.Data["where"] != "epp.yaml:25" {
		t.Errorf("default deny logged with %v", rec.Data)
	}
	// Outside every network, and no rule: denied, not "no route", so a
	// client the rules refuse learns nothing of the routes.
	if _, rep, err := muxtest.SOCKSConnect(at.socks, "127.0.3.7", 22, "", ""); err != nil || rep != 2 {
		t.Fatalf("socks outside every network: rep %d, %v; want 2", rep, err)
	}
	// Allowed by rule 2 but outside every network: now no route.
	if _, rep, err := muxtest.SOCKSConnect(at.socks, "x.nowhere.example", 22, "", ""); err != nil || rep != 3 {
		t.Fatalf("socks to an allowed name no node serves: rep %d, %v; want 3 (network unreachable)", rep, err)
	}

	// HTTP CONNECT: the same rules, answered 403 and 200.
	if got := connectStatus(t, at.connect, "127.0.2.7", at.portB); got != "HTTP/1.1 403 Forbidden" {
		t.Errorf("connect to site-b: %q, want 403", got)
	}
	if got := connectStatus(t, at.connect, "127.0.2.8", 1); got != "HTTP/1.1 403 Forbidden" {
		t.Errorf("connect to 127.0.2.8: %q, want 403", got)
	}
	if got := connectStatus(t, at.connect, "127.0.1.7", at.portA); got != "HTTP/1.1 200 Connection established" {
		t.Errorf("connect to site-a: %q, want 200", got)
	}
	at.logs["root"].waitLog(t, "the connect denial", func(r logRecord) bool {
		return strings.Contains(r.Message, "of entry connect: denied by rule 0 (epp.yaml:30)")
	})

	if got := at.root.Stats().DeniedByRules; got != 5 {
		t.Errorf("DeniedByRules = %d, want 5", got)
	}
	if got := at.root.Status().Ended["denied"]; got != 5 {
		t.Errorf("sessions ended denied at the root: %d, want 5", got)
	}
	if got := at.b.Status().Ended["closed"] + at.b.Status().Ended["denied"]; got != 0 {
		t.Errorf("gwp-b saw %d sessions, want none: every one to it was denied at the entry", got)
	}
}

// An entry with no rules at all carries nothing: every request is a
// default deny.
func TestAddrEntryNoRulesDeniesAll(t *testing.T) {
	at := startAddrTreeWith(t, []string{"127.0.1.0/24"}, []string{"127.0.2.0/24"}, addrTreeRules{})
	if _, rep, err := muxtest.SOCKSConnect(at.socks, "127.0.1.7", at.portA, "", ""); err != nil || rep != 2 {
		t.Fatalf("socks: rep %d, %v; want 2", rep, err)
	}
	if got := connectStatus(t, at.connect, "127.0.1.7", at.portA); got != "HTTP/1.1 403 Forbidden" {
		t.Errorf("connect: %q, want 403", got)
	}
	at.logs["root"].waitLog(t, "the default deny", func(r logRecord) bool {
		return strings.Contains(r.Message, "of entry socks: denied by default deny (no rule of entry socks matched)")
	})
	if got := at.root.Stats().DeniedByRules; got != 2 {
		t.Errorf("DeniedByRules = %d, want 2", got)
	}
}

// The serving node's own rules on its networks: a destination inside
// serves that a rule denies is refused there, whoever asked, and logged
// with the rule.
func TestServesRulesAtServingNode(t *testing.T) {
	denyA := mux.ACL{rule(t, "gwp.yaml:7", mux.ACLRuleSpec{Action: "deny", Nets: []string{"127.0.1.7/32"}})}
	at := startAddrTreeWith(t, []string{"127.0.1.0/24"}, []string{"127.0.2.0/24"},
		addrTreeRules{socks: allowAll, connect: allowAll, aServes: denyA})
	back8, port8 := nameServer(t, "127.0.1.8", "site-a-8")
	_ = back8

	// Through the entry, which allows everything.
	if _, rep, err := muxtest.SOCKSConnect(at.socks, "127.0.1.7", at.portA, "", ""); err != nil || rep != 2 {
		t.Fatalf("socks to 127.0.1.7: rep %d, %v; want 2", rep, err)
	}
	// A header opened by hand, as a forged one would be.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := at.root.OpenAddr(ctx, "gwp-a", "127.0.1.7", at.portA)
	var se *mux.StatusError
	if !errors.As(err, &se) || se.Code != mux.StatusDenied || se.Node != "gwp-a" || !strings.Contains(se.Reason, "denied by rule 0 (gwp.yaml:7)") {
		t.Fatalf("open to 127.0.1.7: %v; want denied at gwp-a by rule 0", err)
	}
	rec := at.logs["gwp-a"].waitLog(t, "the denial at gwp-a", func(r logRecord) bool {
		return strings.Contains(r.Message, fmt.Sprintf("refused: destination 127.0.1.7:%d for root: denied by rule 0 (gwp.yaml:7)", at.portA))
	})
	if rec.Data["where"] != "gwp.yaml:7" {
		t.Errorf("denial logged with %v", rec.Data)
	}
	if got := at.a.Stats().DeniedByRules; got != 2 {
		t.Errorf("gwp-a DeniedByRules = %d, want 2", got)
	}
	if got := at.a.Stats().DeniedDestinations; got != 0 {
		t.Errorf("gwp-a DeniedDestinations = %d, want 0: the address is in its networks", got)
	}
	// Another address in the same network: no rule matches, allowed.
	conn, rep, err := muxtest.SOCKSConnect(at.socks, "127.0.1.8", port8, "", "")
	if err != nil || rep != 0 {
		t.Fatalf("socks to 127.0.1.8: rep %d, %v", rep, err)
	}
	if got := readName(t, conn); got != "site-a-8" {
		t.Fatalf("reached %q", got)
	}
	_ = conn.Close()
}
