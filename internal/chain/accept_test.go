package chain

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux/muxtest"
)

func TestLoadAcceptNetworks(t *testing.T) {
	path := writeConfig(t, "relay.yaml", `label: r1
tls: {cert: r1.crt, key: r1.key, ca: ca.crt}
parents:
  - label: epp
    listen: 127.0.0.1:7101
    accept_networks: [10.0.0.0/8]
children:
  - label: gwp-a
    listen: 127.0.0.1:7103
    accept_networks: [10.1.0.0/16, "*.site-a.example", "10.9.0.0/24:443"]
  - label: gwp-b
    listen: 127.0.0.1:7103
    accept_networks: any
  - label: gwp-c
    listen: 127.0.0.1:7103
    accept_networks: [any, 10.3.0.0/16]
  - label: gwp-d
    listen: 127.0.0.1:7103
    accept_networks: [10.4.0.0/33, "@10.4.0.1"]
`)
	_, err := LoadWith(Relay, path, LoadOptions{SkipTLSFiles: true})
	checkProblems(t, path, err, []problem{
		{6, "parents[0].accept_networks", "only a child link accepts networks"},
		{16, "children[2].accept_networks[0]", `"any" accepts every network`},
		{19, "children[3].accept_networks[0]", "10.4.0.0/33"},
		{19, "children[3].accept_networks[1]", "@10.4.0.1"},
	})

	path = writeConfig(t, "relay.yaml", `label: r1
tls: {cert: r1.crt, key: r1.key, ca: ca.crt}
parents:
  - label: epp
    listen: 127.0.0.1:7101
children:
  - label: gwp-a
    listen: 127.0.0.1:7103
    accept_networks: [10.1.0.0/16, "*.site-a.example", "10.9.0.0/24:443"]
  - label: gwp-b
    listen: 127.0.0.1:7103
    accept_networks: any
  - label: es
    listen: 127.0.0.1:7103
`)
	c, err := LoadWith(Relay, path, LoadOptions{SkipTLSFiles: true})
	if err != nil {
		t.Fatal(err)
	}
	accept := map[string][]string{}
	for _, l := range c.MuxConfig(nil).Links {
		accept[l.Peer] = l.AcceptNetworks
	}
	if !slices.Equal(accept["gwp-a"], []string{"10.1.0.0/16", "*.site-a.example", "10.9.0.0/24:443"}) ||
		!slices.Equal(accept["gwp-b"], []string{"any"}) || accept["es"] != nil || accept["epp"] != nil {
		t.Fatalf("the node's accepted networks: %q", accept)
	}
}

// TestSetCheckAcceptedNetworks: chain check reports each hop whose child
// link does not accept a network served below it, at the parent's link,
// and a gwproxy that registers its endpoints through a link that accepts
// no network.
func TestSetCheckAcceptedNetworks(t *testing.T) {
	dir := writeChain(t, smallChain, map[string][]string{
		"epp/epproxy.yaml": {"dial: 10.0.1.2:7101\n", "dial: 10.0.1.2:7101\n    accept_networks: [10.20.0.0/16, \"*.site.example\"]\n"},
		"gwp/gwproxy.yaml": {"services:\n", "serves: [10.20.0.0/16, 10.30.1.0/24:443, db.site.example]\nregister_endpoints: true\nservices:\n"},
		"r1/relay.yaml":    {"listen: 0.0.0.0:7103\n", "listen: 0.0.0.0:7103\n    accept_networks: [10.20.0.0/16, 10.30.0.0/16, \"*.other.example\"]\n"},
	})
	s, err := LoadSet(dir)
	if err != nil {
		t.Fatalf("LoadSet: %v", err)
	}
	checkChainProblems(t, dir, s.Check(), []chainProblem{
		{"r1/relay.yaml", 9, "children[0].accept_networks", "gwp serves db.site.example"},
		{"epp/epproxy.yaml", 6, "children[0].accept_networks", "gwp serves 10.30.1.0/24:443"},
	})

	// The eventsink below gwp serves nothing; a link with no
	// accept_networks above a node that registers endpoints is reported.
	dir = writeChain(t, smallChain, map[string][]string{
		"gwp/gwproxy.yaml": {"services:\n", "register_endpoints: true\nservices:\n"},
		"r1/relay.yaml":    {"listen: 0.0.0.0:7103\n", "listen: 0.0.0.0:7103\n    accept_networks: any\n"},
	})
	if s, err = LoadSet(dir); err != nil {
		t.Fatalf("LoadSet: %v", err)
	}
	checkChainProblems(t, dir, s.Check(), []chainProblem{
		{"epp/epproxy.yaml", 4, "children[0].accept_networks", "gwp registers its endpoints"},
	})
}

// TestApplyAcceptNetworks reloads an epproxy whose child serves a
// network: refused while the link accepts none, taken once a reload
// accepts it, without the link going down, and dropped by the next reload
// that no longer accepts it.
func TestApplyAcceptNetworks(t *testing.T) {
	eppPath, gwpPath, _, _ := smallTree(t, echoServer(t), time.Second)
	b, err := os.ReadFile(gwpPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gwpPath, append(b, []byte("serves: [10.20.0.0/16]\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	epp := startRun(t, EPProxy, eppPath)
	gwp := startRun(t, GWProxy, gwpPath)
	root, leaf := epp.getNode(t), gwp.getNode(t)
	// Refused in each announcement that carries it (the WHO reply, the
	// TELL): at least once.
	muxtest.WaitFor(t, 10*time.Second, "the refusal at the root", func() bool { return root.Stats().RefusedNetworks >= 1 })
	if len(root.Networks()) != 0 {
		t.Fatalf("the root took %v from a link that accepts none", root.Networks())
	}
	if want := "the link to child gwp-test accepts no networks"; !strings.Contains(epp.logs.String(), want) {
		t.Errorf("no %q in the log:\n%s", want, epp.logs.String())
	}
	linked := leaf.Status().Links[0].Since

	accept := func(old, list string) {
		t.Helper()
		next := editConfig(t, EPProxy, eppPath, func(s string) string {
			return strings.Replace(s, old, "    insecure_plaintext: true\n"+list, 1)
		})
		if err := Apply(epp.cfg, next, epp.logger); err != nil {
			t.Fatal(err)
		}
	}
	accept("    insecure_plaintext: true\n", "    accept_networks: [10.0.0.0/8]\n")
	muxtest.WaitFor(t, 10*time.Second, "the network accepted at the root", func() bool {
		owner, err := root.ServedBy("10.20.1.1", 22)
		return err == nil && owner == "gwp-test"
	})
	if want := "networks accepted from gwp-test changed (10.0.0.0/8)"; !strings.Contains(epp.logs.String(), want) {
		t.Errorf("no %q in the log:\n%s", want, epp.logs.String())
	}
	accept("    insecure_plaintext: true\n    accept_networks: [10.0.0.0/8]\n", "    accept_networks: [10.30.0.0/16]\n")
	if len(root.Networks()) != 0 {
		t.Fatalf("the root kept %v after the reload", root.Networks())
	}
	if since := leaf.Status().Links[0].Since; !since.Equal(linked) {
		t.Fatalf("the link came up again (%v, was %v): a change of accept_networks replaced it", since, linked)
	}
}

// TestAcceptOverlapsWarned: two child links of one node whose accepted
// networks overlap, or one that accepts any beside another, are warned
// about (a child could claim the other's addresses); disjoint ones are
// not.
func TestAcceptOverlapsWarned(t *testing.T) {
	relay := func(a, b string) string {
		return `label: r1
tls: {cert: r1.crt, key: r1.key, ca: ca.crt}
parents:
  - label: epp
    listen: 0.0.0.0:7101
children:
  - label: gwp-a
    listen: 0.0.0.0:7103
    accept_networks: ` + a + `
  - label: gwp-b
    listen: 0.0.0.0:7103
    accept_networks: ` + b + `
`
	}
	for _, tc := range []struct {
		a, b, want string
	}{
		{"[10.1.0.0/16]", "[10.2.0.0/16]", ""},
		{"[10.1.0.0/16]", "[10.1.2.0/24]", "10.1.0.0/16 and 10.1.2.0/24 overlap"},
		{`["*.site.example"]`, "[db.site.example]", "*.site.example and db.site.example overlap"},
		{"any", "[10.2.0.0/16]", "one of them accepts any network"},
	} {
		path := writeConfig(t, "relay.yaml", relay(tc.a, tc.b))
		cfg, err := LoadWith(Relay, path, LoadOptions{SkipTLSFiles: true})
		if err != nil {
			t.Fatalf("%s / %s: %v", tc.a, tc.b, err)
		}
		var got []string
		for _, w := range cfg.Warnings() {
			got = append(got, w.Error())
		}
		switch {
		case tc.want == "" && len(got) != 0:
			t.Errorf("%s / %s: warned %q", tc.a, tc.b, got)
		case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want) || !strings.Contains(got[0], "children[1].accept_networks")):
			t.Errorf("%s / %s: warnings %q, want one with %q", tc.a, tc.b, got, tc.want)
		}
	}
}
