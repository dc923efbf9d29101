package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relaychain/relaychain/e2e/e2etest"
)

// es-site-a, site A's eventsink, attaches below gwp-site-b instead of
// gwp-site-a: gwp-site-b takes it (its link accepts any label) and
// announces it, but relay-dmz2's link to gwp-site-b accepts gwp-site-b's
// own label only (the default of configs/example), so relay-dmz2 refuses
// the claim, logs it with the child, the label and the reason, and counts
// it; no node above learns the label, and site B stays routed.
func TestRefusedLabelClaim(t *testing.T) {
	sinkPort := e2etest.FreePort(t)
	reDial := regexp.MustCompile(`dial: 127\.0\.0\.1:\d+`)
	nodes := append(slices.Clone(e2etest.SessionNodes), e2etest.Node{Name: "es-site-a", Daemon: "eventsink"})
	c := e2etest.NewChain(t, e2etest.Options{Nodes: nodes, Tuning: e2etest.FastTuning,
		Edit: func(node, text string) string {
			switch node {
			case "gwp-site-b":
				if strings.Contains(text, "\nchildren:") {
					t.Fatalf("gwp-site-b has children already:\n%s", text)
				}
				return text + fmt.Sprintf("children:\n  - label: es-site-a\n    listen: 127.0.0.1:%d\n    accept_labels: any\n", sinkPort)
			case "es-site-a":
				next := reDial.ReplaceAllString(text, fmt.Sprintf("dial: 127.0.0.1:%d", sinkPort))
				next = strings.Replace(next, "label: gwp-site-a\n", "label: gwp-site-b\n", 1)
				if next == text || !strings.Contains(next, "  - label: gwp-site-b\n") {
					t.Fatalf("no parent link in es-site-a's configuration:\n%s", text)
				}
				return next
			}
			return text
		}})
	c.StartAll()
	waitFormed(t, c, 0)
	c.Proc("gwp-site-b").WaitLog(t, 0, 20*time.Second, e2etest.RouteAdded("es-site-a"))
	relay := c.Proc("relay-dmz2")
	relay.WaitLog(t, 0, 20*time.Second,
		`refused label es-site-a announced by child gwp-site-b: outside the link's accept_labels \(gwp-site-b\).*l=gwp-site-b.*label=es-site-a`)

	st, err := nodeStatus(t, c, e2etest.Node{Name: "relay-dmz2", Daemon: "relay"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Stats.RefusedLabels == 0 {
		t.Error("relay-dmz2 status: no refused label counted")
	}
	out, errOut, code := e2etest.RunCommand(t, c.NodeDir("relay-dmz2"), e2etest.Bin(t, "relay"),
		"status", "--config", filepath.Join(c.NodeDir("relay-dmz2"), "relay.yaml"))
	if code != 0 || !strings.Contains(out, "refused labels: ") {
		t.Errorf("relay-dmz2 status: exit %d, no refused labels in:\n%s%s", code, out, errOut)
	}
	for _, n := range []string{"relay-dmz2", "relay-dmz1", "epp-main"} {
		if regexp.MustCompile(e2etest.RouteAdded("es-site-a")).MatchString(c.Proc(n).LogSince(0)) {
			t.Errorf("%s took the route to es-site-a:\n%s", n, c.Proc(n).LogSince(0))
		}
	}
}
