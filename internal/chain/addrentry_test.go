package chain

import (
	"net"
	"net/netip"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

func TestLoadAddrEntriesAndServes(t *testing.T) {
	path := writeConfig(t, "gwproxy.yaml", `label: gwp-a
tls: {cert: a.crt, key: a.key, ca: ca.crt}
parents:
  - label: epp
    dial: 127.0.0.1:7000
serves: [127.0.1.0/24, "*.site-a.example:22", "[::1]:8080"]
entries:
  - name: up-socks
    listen: 127.0.0.1:9601
    kind: socks5
    dest: epp
    users:
      - {name: ops, password: s3cret}
    rules:
      - action: deny
        ports: [22]
      - action: allow
        sources: [127.0.0.0/8]
        nets: [10.1.0.0/16]
        dests: [epp]
  - name: up-connect
    listen: 127.0.0.1:9602
    kind: http_connect
    dest: epp
    rules:
      - action: allow
        hosts: ["*.gateways.example"]
serves_rules:
  - action: deny
    origins: [gwp-*]
    nets: [127.0.1.1]
`)
	c, err := LoadWith(GWProxy, path, LoadOptions{SkipTLSFiles: true})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	mc := c.MuxConfig(nil)
	if !reflect.DeepEqual(mc.Serves, []string{"127.0.1.0/24", "*.site-a.example:22", "[::1]:8080"}) {
		t.Fatalf("serves: %v", mc.Serves)
	}
	if got := c.Entries[0].addrEntry(); !reflect.DeepEqual(got, mux.AddrEntry{Name: "up-socks", Kind: "socks5", Dest: "epp", Users: map[string]string{"ops": "s3cret"}}) {
		t.Fatalf("socks entry: %+v", got)
	}
	if got := c.Entries[1].addrEntry(); got.Kind != mux.EntryHTTPConnect || got.Users != nil {
		t.Fatalf("connect entry: %+v", got)
	}
	ae := c.addrEntryConfig(c.Entries[0])
	if ae.Where != path+":8" || len(ae.Rules) != 2 || ae.Rules[0].Where != path+":15" || ae.Rules[1].Where != path+":17" {
		t.Fatalf("socks entry's rules: where %q, %+v", ae.Where, ae.Rules)
	}
	req := mux.ACLRequest{Origin: "gwp-a", Host: "10.1.2.3", Port: 443, Source: netip.MustParseAddr("127.0.0.9"), Dest: "epp"}
	if allow, rule := ae.Rules.Decide(req, false); !allow || rule != 1 {
		t.Errorf("10.1.2.3:443 from 127.0.0.9: allow %v by rule %d, want rule 1", allow, rule)
	}
	req.Port = 22
	if allow, rule := ae.Rules.Decide(req, false); allow || rule != 0 {
		t.Errorf("port 22: allow %v by rule %d, want denied by rule 0", allow, rule)
	}
	if len(mc.ServesRules) != 1 || mc.ServesRules[0].Where != path+":29" || mc.ServesRules[0].Allow {
		t.Fatalf("serves_rules: %+v", mc.ServesRules)
	}
}

// Rules of socks5 and http_connect entries and serves_rules: what each
// place can match, and an entry that could never carry anything.
func TestLoadAddrEntryRulesRejects(t *testing.T) {
	path := writeConfig(t, "epproxy.yaml", `label: epp
tls: {cert: a.crt, key: a.key, ca: ca.crt}
entries:
  - name: none
    listen: 127.0.0.1:9601
    kind: socks5
  - name: denies-only
    listen: 127.0.0.1:9602
    kind: http_connect
    rules:
      - action: deny
        ports: [22]
      - action: deny
  - name: by-service
    listen: 127.0.0.1:9603
    kind: socks5
    rules:
      - action: allow
        services: [endpoint]
serves_rules:
  - action: deny
    sources: [10.0.0.1]
  - action: allow
    dests: [epp]
`)
	_, err := LoadWith(EPProxy, path, LoadOptions{SkipTLSFiles: true})
	checkProblems(t, path, err, []problem{
		{4, "entries[0].rules", "missing: a socks5 entry denies every destination no rule allows"},
		{10, "entries[1].rules", "no rule allows anything"},
		{19, "entries[2].rules[0].services", "has no service"},
		{20, "serves_rules", "serves no network"},
		{22, "serves_rules[0].sources", "sees no client address"},
		{23, "serves_rules[1]", "not services or dests"},
	})
}

func TestLoadAddrEntriesRejects(t *testing.T) {
	path := writeConfig(t, "gwproxy.yaml", `label: gwp-a
tls: {cert: a.crt, key: a.key, ca: ca.crt}
parents:
  - label: epp
    dial: 127.0.0.1:7000
serves:
  - 10.0.0.0/33
  - 127.0.1.0/24
  - 127.0.1.9/24
  - "*.bad..name"
  - 10.0.0.0/8:0
entries:
  - name: up
    listen: 127.0.0.1:9601
    kind: socks4
    dest: epp
  - name: up2
    listen: 127.0.0.1:9602
    kind: socks5
    service: gateway
    users:
      - {name: ops}
`)
	_, err := LoadWith(GWProxy, path, LoadOptions{SkipTLSFiles: true})
	checkProblems(t, path, err, []problem{
		{15, "entries[0].kind", "not a kind of entry"},
		{20, "entries[1].service", "has no service"},
		{17, "entries[1].dest", "missing: on a gwproxy"},
		{17, "entries[1].rules", "missing: a socks5 entry denies"},
		{22, "entries[1].users[0].password", "want a password"},
		{7, "serves[0]", "10.0.0.0/33"},
		{9, "serves[2]", "listed twice"},
		{10, "serves[3]", "host name"},
		{11, "serves[4]", "port"},
	})
}

func TestSetCheckServedNetworks(t *testing.T) {
	dir := writeChain(t, smallChain, map[string][]string{
		"epp/epproxy.yaml": {"entries:\n", "entries:\n  - name: socks\n    listen: 127.0.0.1:1080\n    kind: socks5\n    rules: [{action: allow}]\n",
			"dial: 10.0.1.2:7101\n", "dial: 10.0.1.2:7101\n    accept_networks: [10.0.0.0/8]\n"},
		"gwp/gwproxy.yaml": {"services:\n", "serves: [10.20.0.0/16, 10.30.0.0/16]\nservices:\n"},
		"r1/relay.yaml":    {"children:\n", "serves: [10.30.0.0/16, 10.30.5.0/24]\nchildren:\n", "listen: 0.0.0.0:7103\n", "listen: 0.0.0.0:7103\n    accept_networks: any\n"},
	})
	s, err := LoadSet(dir)
	if err != nil {
		t.Fatalf("LoadSet: %v", err)
	}
	checkChainProblems(t, dir, s.Check(), []chainProblem{
		{"r1/relay.yaml", 6, "serves[0]", "gwp also serves 10.30.0.0/16, as specifically"},
	})

	// Without any served network, the socks entry has nowhere to go.
	dir = writeChain(t, smallChain, map[string][]string{
		"epp/epproxy.yaml": {"entries:\n", "entries:\n  - name: socks\n    listen: 127.0.0.1:1080\n    kind: socks5\n    rules: [{action: allow}]\n"},
	})
	if s, err = LoadSet(dir); err != nil {
		t.Fatalf("LoadSet: %v", err)
	}
	checkChainProblems(t, dir, s.Check(), []chainProblem{
		{"epp/epproxy.yaml", 13, "entries[0].kind", "no node of the chain given serves a network"},
	})
}

// TestApplyAddrEntry reloads a running gwproxy with a socks5 entry added:
// its sessions reach what the epproxy serves. A change of serves needs a
// restart: the reload is refused whole.
func TestApplyAddrEntry(t *testing.T) {
	echo := echoServer(t)
	eppPath, gwpPath, _, _ := smallTree(t, echo, 300*time.Millisecond)
	b, err := os.ReadFile(eppPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(eppPath, append(b, []byte("serves: [\""+echo+"\"]\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	epp := startRun(t, EPProxy, eppPath)
	gwp := startRun(t, GWProxy, gwpPath)
	n := gwp.getNode(t)
	muxtest.WaitFor(t, 10*time.Second, "gwp-test's path to the root", func() bool { return len(n.PathToRoot()) == 1 })

	socks := freeAddr(t)
	next := editConfig(t, GWProxy, gwpPath, func(s string) string {
		return strings.Replace(s, "entries:\n", "entries:\n  - name: up-socks\n    listen: "+socks+"\n    kind: socks5\n    dest: epp-test\n    rules: [{action: allow, sources: [127.0.0.1]}]\n", 1)
	})
	if err := Apply(gwp.cfg, next, gwp.logger); err != nil {
		t.Fatal(err)
	}
	if want := "entry up-socks added on " + socks + " for socks5 clients\n"; !strings.Contains(gwp.logs.String(), want) {
		t.Errorf("no %q in the log:\n%s", want, gwp.logs.String())
	}
	host, port, _ := net.SplitHostPort(echo)
	p, _ := strconv.Atoi(port)
	c, rep, err := muxtest.SOCKSConnect(socks, host, uint16(p), "", "")
	if err != nil || rep != 0 {
		t.Fatalf("socks through the added entry: reply %d, %v", rep, err)
	}
	defer c.Close()
	echoOnce(t, c, []byte("by address"))

	nextEpp := editConfig(t, EPProxy, eppPath, func(s string) string {
		return strings.Replace(s, "serves: [\""+echo+"\"]", "serves: [127.0.0.0/8]", 1)
	})
	if err := Apply(epp.cfg, nextEpp, epp.logger); err == nil || !strings.Contains(err.Error(), "a restart is needed to change serves") {
		t.Errorf("a change of serves: %v, want a restart needed", err)
	}
	echoOnce(t, c, []byte("still served"))
}
