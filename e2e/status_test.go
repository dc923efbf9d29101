package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/relaychain/relaychain/e2e/e2etest"
	"github.com/relaychain/relaychain/mux"
)

// nodeStatus runs "DAEMON status --json" for node and decodes its answer.
func nodeStatus(t *testing.T, c *e2etest.Chain, n e2etest.Node) (mux.NodeStatus, error) {
	t.Helper()
	var st mux.NodeStatus
	out, errOut, code := e2etest.RunCommand(t, c.NodeDir(n.Name), e2etest.Bin(t, n.Daemon),
		"status", "--json", "--config", filepath.Join(c.NodeDir(n.Name), n.Daemon+".yaml"))
	if code != 0 {
		return st, fmt.Errorf("%s status: exit %d: %s", n.Name, code, errOut)
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, fmt.Errorf("%s status: %v in %q", n.Name, err, out)
	}
	return st, nil
}

func TestStatusCommand(t *testing.T) {
	tg := startTargets(t)
	c := startChain(t, tg)
	running := map[string]bool{}
	for _, n := range e2etest.SessionNodes {
		running[n.Name] = true
	}

	// Every link between running nodes comes up; gwp-site-a's link to
	// es-site-a, which this chain does not run, is there and down.
	for _, n := range e2etest.SessionNodes {
		e2etest.Eventually(t, 20*time.Second, n.Name+"'s links up", func() error {
			st, err := nodeStatus(t, c, n)
			if err != nil {
				return err
			}
			if st.Label != n.Name {
				return fmt.Errorf("label %q", st.Label)
			}
			for _, l := range st.Links {
				if l.Up != running[l.Peer] {
					return fmt.Errorf("link to %s: up %v", l.Peer, l.Up)
				}
			}
			if n.Name != "epp-main" && (len(st.PathToRoot) == 0 || st.PathToRoot[len(st.PathToRoot)-1] != "epp-main") {
				return fmt.Errorf("path to the root %v", st.PathToRoot)
			}
			return nil
		})
	}
	st, err := nodeStatus(t, c, e2etest.Node{Name: "gwp-site-a", Daemon: "gwproxy"})
	if err != nil {
		t.Fatal(err)
	}
	var sink *mux.LinkStatus
	for i := range st.Links {
		if st.Links[i].Peer == "es-site-a" {
			sink = &st.Links[i]
		}
	}
	if sink == nil || sink.Up || sink.Side != "child" || !sink.Since.IsZero() {
		t.Errorf("gwp-site-a's link to es-site-a: %+v, want it down and never up", sink)
	}

	gwpConf := filepath.Join(c.NodeDir("gwp-site-a"), "gwproxy.yaml")
	out, errOut, code := e2etest.RunCommand(t, c.NodeDir("gwp-site-a"), e2etest.Bin(t, "gwproxy"), "status", "--config", gwpConf)
	if code != 0 {
		t.Fatalf("gwproxy status: exit %d: %s", code, errOut)
	}
	for _, want := range []string{`(?m)^path to the root: relay-dmz2 > relay-dmz1 > epp-main$`, `(?m)^  relay-dmz2 +parent +up +`, `(?m)^  es-site-a +child +down +never up `} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("gwproxy status does not match %s:\n%s", want, out)
		}
	}

	// relay-dmz2 dies: gwp-site-a shows its parent link down.
	c.Proc("relay-dmz2").Kill(t)
	e2etest.Eventually(t, 20*time.Second, "gwp-site-a's parent link down", func() error {
		out, errOut, code := e2etest.RunCommand(t, c.NodeDir("gwp-site-a"), e2etest.Bin(t, "gwproxy"), "status", "--config", gwpConf)
		if code != 0 {
			return fmt.Errorf("exit %d: %s", code, errOut)
		}
		for _, want := range []string{`(?m)^path to the root: none`, `(?m)^  relay-dmz2 +parent +down +\S+ ago `} {
			if !regexp.MustCompile(want).MatchString(out) {
				return fmt.Errorf("no match for %s in:\n%s", want, out)
			}
		}
		return nil
	})

	// A killed daemon leaves its socket file behind, and nothing answers.
	relayConf := filepath.Join(c.NodeDir("relay-dmz2"), "relay.yaml")
	_, errOut, code = e2etest.RunCommand(t, c.NodeDir("relay-dmz2"), e2etest.Bin(t, "relay"), "status", "--config", relayConf)
	if code != 1 || !strings.Contains(errOut, "not running: socket "+filepath.Join(c.NodeDir("relay-dmz2"), "relay.sock")) {
		t.Errorf("status of a killed relay: exit %d, %q", code, errOut)
	}
	// A daemon stopped cleanly removes it.
	c.Proc("epp-main").Stop(t)
	eppConf := filepath.Join(c.NodeDir("epp-main"), "epproxy.yaml")
	_, errOut, code = e2etest.RunCommand(t, c.NodeDir("epp-main"), e2etest.Bin(t, "epproxy"), "status", "--config", eppConf)
	if want := "not running: no socket at " + filepath.Join(c.NodeDir("epp-main"), "epproxy.sock"); code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("status of a stopped epproxy: exit %d, %q; want exit 1 and %q", code, errOut, want)
	}
}
