package e2e

import (
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relaychain/relaychain/e2e/e2etest"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// gwp-site-b claims a network inside site A's (127.0.1.0/25, more
// specific than site A's 127.0.1.0/24): relay-dmz2 accepts from it only
// site B's networks (configs/example), so it refuses the claim, logs it
// with the child, the owner and the reason, and counts it; downcalls by
// address to 127.0.1.7 still reach site A, and gwp-site-b carries none.
func TestRefusedNetworkClaim(t *testing.T) {
	siteA := startSiteEndpoint(t, "127.0.1.7", "endpoint-a")
	c := e2etest.NewChain(t, e2etest.Options{Nodes: e2etest.SessionNodes, Tuning: e2etest.FastTuning,
		Edit: func(node, text string) string {
			if node != "gwp-site-b" {
				return text
			}
			if !strings.Contains(text, "serves:\n") {
				t.Fatalf("gwp-site-b serves nothing:\n%s", text)
			}
			return strings.Replace(text, "serves:\n", "serves:\n  - 127.0.1.0/25\n", 1)
		}})
	c.StartAll()
	waitFormed(t, c, 0)
	relay := c.Proc("relay-dmz2")
	relay.WaitLog(t, 0, 20*time.Second,
		`refused network 127\.0\.1\.0/25 of gwp-site-b announced by child gwp-site-b: outside the link's accept_networks \(127\.0\.2\.0/24,127\.0\.3\.0/24,\*\.site-b\.example\).*l=gwp-site-b.*owner=gwp-site-b`)

	socks := c.Addr(e2etest.PortSOCKS)
	e2etest.Eventually(t, 20*time.Second, "site A by address", func() error {
		conn, rep, err := muxtest.SOCKSConnect(socks, "127.0.1.7", siteA.port, "", "")
		if err != nil || rep != 0 {
			return errors.New("socks reply " + strconv.Itoa(int(rep)) + ": " + errString(err))
		}
		defer conn.Close()
		if got, err := readLine(conn); err != nil || got != "endpoint-a" {
			t.Fatalf("reached %q, %v", got, err)
		}
		return nil
	})
	_ = siteA.nextEnd(t)

	st, err := nodeStatus(t, c, e2etest.Node{Name: "relay-dmz2", Daemon: "relay"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Stats.RefusedNetworks == 0 {
		t.Error("relay-dmz2 status: no refused network counted")
	}
	out, errOut, code := e2etest.RunCommand(t, c.NodeDir("relay-dmz2"), e2etest.Bin(t, "relay"),
		"status", "--config", filepath.Join(c.NodeDir("relay-dmz2"), "relay.yaml"))
	if code != 0 || !strings.Contains(out, "refused networks: ") {
		t.Errorf("relay-dmz2 status: exit %d, no refused networks in:\n%s%s", code, out, errOut)
	}
	for _, n := range []string{"relay-dmz1", "epp-main"} {
		if log := c.Proc(n).LogSince(0); strings.Contains(log, "gwp-site-b=127.0.1.0/25") {
			t.Errorf("%s learnt the refused network:\n%s", n, log)
		}
	}
	if log := c.Proc("gwp-site-b").LogSince(0); strings.Contains(log, "session: opened") {
		t.Errorf("gwp-site-b carried a session; the downcall was for site A:\n%s", log)
	}
}
