package e2e

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relaychain/relaychain/e2e/e2etest"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// gwp-site-a serves the name localhost (its parents accept it), and
// epp-main's SOCKS5 entry allows it: the name resolves at gwp-site-a to a loopback address,
// which no rule of its serves_rules allows, so the session is refused
// there (SOCKS reply 2) with the name, the address and the default in its
// log, counted, and the endpoint listening on 127.0.0.1 is never dialled.
func TestSOCKSNameResolvedToLoopbackRefused(t *testing.T) {
	local := startSiteEndpoint(t, "127.0.0.1", "gwproxy-host")
	c := e2etest.NewChain(t, e2etest.Options{Nodes: e2etest.SessionNodes, Tuning: e2etest.FastTuning,
		Edit: func(node, text string) string {
			switch node {
			case "gwp-site-a":
				return strings.Replace(text, "  - \"*.site-a.example\"\n", "  - \"*.site-a.example\"\n  - localhost\n", 1)
			case "epp-main":
				text = strings.Replace(text, "      - \"*.site-a.example\"\n", "      - \"*.site-a.example\"\n      - localhost\n", 1) // accept_networks
				return strings.Replace(text, `hosts: ["*.site-a.example", "*.site-b.example"]`, `hosts: ["*.site-a.example", "*.site-b.example", localhost]`, 1)
			case "relay-dmz1":
				return strings.Replace(text, `"*.site-a.example", "*.site-b.example"]`, `"*.site-a.example", "*.site-b.example", localhost]`, 1)
			case "relay-dmz2":
				return strings.Replace(text, `accept_networks: [127.0.1.0/24, "*.site-a.example"]`, `accept_networks: [127.0.1.0/24, "*.site-a.example", localhost]`, 1)
			}
			return text
		}})
	c.StartAll()
	waitFormed(t, c, 0)
	gwp := c.Proc("gwp-site-a")
	socks := c.Addr(e2etest.PortSOCKS)
	var rep byte
	e2etest.Eventually(t, 20*time.Second, "localhost refused at gwp-site-a", func() error {
		var err error
		if _, rep, err = muxtest.SOCKSConnect(socks, "localhost", local.port, "", ""); err != nil || rep != 2 {
			return errors.New("socks reply " + strconv.Itoa(int(rep)) + ": " + errString(err))
		}
		return nil
	})
	gwp.WaitLog(t, 0, 20*time.Second, `refused: destination localhost:`+strconv.Itoa(int(local.port))+
		` \(resolved to (127\.0\.0\.1|::1)\) for epp-main: denied by default: (127\.0\.0\.1|::1) is a loopback address`)
	c.Proc("epp-main").WaitLog(t, 0, 20*time.Second, `open failed.*denied \(at gwp-site-a\): destination localhost:`)
	select {
	case err := <-local.ended:
		t.Errorf("the gwproxy's host was dialled through localhost: %v", err)
	default:
	}
	st, err := nodeStatus(t, c, e2etest.Node{Name: "gwp-site-a", Daemon: "gwproxy"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Stats.DeniedResolved != 1 || st.Stats.DeniedByRules != 1 {
		t.Errorf("gwp-site-a status: %d denied resolved, %d denied by rules; want 1 and 1", st.Stats.DeniedResolved, st.Stats.DeniedByRules)
	}
}
