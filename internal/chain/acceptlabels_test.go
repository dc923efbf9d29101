package chain

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

func TestLoadAcceptLabels(t *testing.T) {
	path := writeConfig(t, "relay.yaml", `label: r1
tls: {cert: r1.crt, key: r1.key, ca: ca.crt}
parents:
  - label: epp
    listen: 127.0.0.1:7101
    accept_labels: [gwp-a]
children:
  - label: gwp-a
    listen: 127.0.0.1:7103
    accept_labels: [es-a, "es-a-*"]
  - label: gwp-b
    listen: 127.0.0.1:7103
    accept_labels: any
  - label: gwp-c
    listen: 127.0.0.1:7103
    accept_labels: [any, es-c]
  - label: gwp-d
    listen: 127.0.0.1:7103
    accept_labels: ["es-[d"]
`)
	_, err := LoadWith(Relay, path, LoadOptions{SkipTLSFiles: true})
	checkProblems(t, path, err, []problem{
		{6, "parents[0].accept_labels", "only a child link accepts labels"},
		{16, "children[2].accept_labels[0]", `"any" accepts every label`},
		{19, "children[3].accept_labels[0]", "es-[d"},
	})

	// The default is the child's own label only; "any" is nil for mux.
	path = writeConfig(t, "relay.yaml", `label: r1
tls: {cert: r1.crt, key: r1.key, ca: ca.crt}
parents:
  - label: epp
    listen: 127.0.0.1:7101
children:
  - label: gwp-a
    listen: 127.0.0.1:7103
    accept_labels: es-a
  - label: gwp-b
    listen: 127.0.0.1:7103
    accept_labels: any
  - label: es
    listen: 127.0.0.1:7103
`)
	c, err := LoadWith(Relay, path, LoadOptions{SkipTLSFiles: true})
	if err != nil {
		t.Fatal(err)
	}
	accept := map[string][]string{}
	for _, l := range c.MuxConfig(nil).Links {
		accept[l.Peer] = l.AcceptLabels
	}
	if !slices.Equal(accept["gwp-a"], []string{"es-a"}) || accept["gwp-b"] != nil ||
		!slices.Equal(accept["es"], []string{"es"}) || accept["epp"] != nil {
		t.Fatalf("the node's accepted labels: %q", accept)
	}
}

// TestSetCheckAcceptedLabels: chain check reports each hop whose child
// link does not accept a label below it (the eventsink below the
// gwproxy, the gwproxy below the relay), at the parent's link; a pattern
// or any accepts them.
func TestSetCheckAcceptedLabels(t *testing.T) {
	dir := writeChain(t, smallChain, map[string][]string{
		"epp/epproxy.yaml": {"    accept_labels: [gwp, es]\n", ""},
		"r1/relay.yaml":    {"    accept_labels: es\n", ""},
	})
	s, err := LoadSet(dir)
	if err != nil {
		t.Fatalf("LoadSet: %v", err)
	}
	checkChainProblems(t, dir, s.Check(), []chainProblem{
		{"r1/relay.yaml", 7, "children[0].accept_labels", "is below gwp, but this link to gwp does not accept its label: r1 would refuse it"},
		{"epp/epproxy.yaml", 4, "children[0].accept_labels", "es (" + dir + "/es/eventsink.yaml) is below r1"},
		{"epp/epproxy.yaml", 4, "children[0].accept_labels", "gwp (" + dir + "/gwp/gwproxy.yaml) is below r1, but this link to r1 does not accept its label"},
	})

	dir = writeChain(t, smallChain, map[string][]string{
		"epp/epproxy.yaml": {"    accept_labels: [gwp, es]\n", "    accept_labels: any\n"},
		"r1/relay.yaml":    {"    accept_labels: es\n", "    accept_labels: \"e*\"\n"},
	})
	if s, err = LoadSet(dir); err != nil {
		t.Fatalf("LoadSet: %v", err)
	}
	if err := s.Check(); err != nil {
		t.Fatalf("check: %v", err)
	}
}

// TestApplyAcceptLabels reloads an epproxy whose child gwproxy has a node
// below it: its label is refused while the link accepts the gwproxy's
// own only (the default), taken once a reload accepts it, without the
// link going down, and dropped by the next reload that no longer does.
func TestApplyAcceptLabels(t *testing.T) {
	eppPath, gwpPath, _, _ := smallTree(t, echoServer(t), time.Second)
	below := freeAddr(t)
	b, err := os.ReadFile(gwpPath)
	if err != nil {
		t.Fatal(err)
	}
	extra := fmt.Sprintf("children:\n  - label: es-test\n    listen: %s\n    insecure_plaintext: true\n", below)
	if err := os.WriteFile(gwpPath, append(b, []byte(extra)...), 0o644); err != nil {
		t.Fatal(err)
	}
	epp := startRun(t, EPProxy, eppPath)
	gwp := startRun(t, GWProxy, gwpPath)
	root, mid := epp.getNode(t), gwp.getNode(t)
	muxtest.StartNode(t, mux.Config{Label: "es-test", Role: mux.RoleLeaf, Tuning: muxtest.FastTuning(),
		Links: []mux.LinkConfig{{Peer: "gwp-test", Parent: true, Dial: below, Plaintext: true}}})
	muxtest.WaitFor(t, 10*time.Second, "the refusal at the root", func() bool {
		return mid.Routes()["es-test"] == "es-test" && root.Stats().RefusedLabels >= 1
	})
	if _, ok := root.Routes()["es-test"]; ok {
		t.Fatalf("the root routes es-test through a link that accepts gwp-test only: %v", root.Routes())
	}
	if want := "refused label es-test announced by child gwp-test"; !strings.Contains(epp.logs.String(), want) {
		t.Errorf("no %q in the log:\n%s", want, epp.logs.String())
	}
	linked := mid.Status().Links[0].Since

	accept := func(old, list string) {
		t.Helper()
		next := editConfig(t, EPProxy, eppPath, func(s string) string {
			return strings.Replace(s, old, "    insecure_plaintext: true\n"+list, 1)
		})
		if err := Apply(epp.cfg, next, epp.logger); err != nil {
			t.Fatal(err)
		}
	}
	accept("    insecure_plaintext: true\n", "    accept_labels: [es-*]\n")
	muxtest.WaitFor(t, 10*time.Second, "es-test at the root", func() bool { return root.Routes()["es-test"] == "gwp-test" })
	if want := "labels accepted from gwp-test changed (es-*)"; !strings.Contains(epp.logs.String(), want) {
		t.Errorf("no %q in the log:\n%s", want, epp.logs.String())
	}
	accept("    insecure_plaintext: true\n    accept_labels: [es-*]\n", "    accept_labels: [gwp-other]\n")
	if _, ok := root.Routes()["es-test"]; ok {
		t.Fatalf("the root kept es-test after the reload: %v", root.Routes())
	}
	if root.Routes()["gwp-test"] != "gwp-test" {
		t.Fatalf("the root lost gwp-test's own label: %v", root.Routes())
	}
	if since := mid.Status().Links[0].Since; !since.Equal(linked) {
		t.Fatalf("the link came up again (%v, was %v): a change of accept_labels replaced it", since, linked)
	}
}
