package e2e

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relaychain/relaychain/e2e/e2etest"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// epp-main's SOCKS5 and HTTP CONNECT entries allow the sites' networks
// from 127.0.0.1 (configs/example); the test puts a deny rule for site
// B's endpoint first, and an allow for 127.0.3.0/24, which no node
// serves. A denied destination and one no rule matches (a default deny)
// get SOCKS reply 2 and HTTP 403, with the rule (or the entry) and its
// file:line in the epproxy's log; an allowed one still goes through; an
// allowed one no node serves is no route (3, 502).
func TestSOCKSRulesAtTheEPProxy(t *testing.T) {
	siteA := startSiteEndpoint(t, "127.0.1.7", "endpoint-a")
	siteB := startSiteEndpoint(t, "127.0.2.7", "endpoint-b")
	extra := "      - action: deny\n        nets: [127.0.2.7]\n      - action: allow\n        nets: [127.0.3.0/24]\n"
	c := e2etest.NewChain(t, e2etest.Options{Nodes: e2etest.SessionNodes, Tuning: e2etest.FastTuning,
		Edit: func(node, text string) string {
			if node != "epp-main" {
				return text
			}
			for _, kind := range []string{"socks5", "http_connect"} {
				head := "    kind: " + kind + "\n    rules:\n"
				if !strings.Contains(text, head) {
					t.Fatalf("no rules on the %s entry of epp-main:\n%s", kind, text)
				}
				text = strings.Replace(text, head, head+extra, 1)
			}
			return text
		}})
	c.StartAll()
	waitFormed(t, c, 0)
	epp := c.Proc("epp-main")
	socks, connect := c.Addr(e2etest.PortSOCKS), c.Addr(e2etest.PortConnect)

	// Allowed by the example's rule: reaches site A once its network is up.
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

	// Denied by rule 0.
	if _, rep, err := muxtest.SOCKSConnect(socks, "127.0.2.7", siteB.port, "", ""); err != nil || rep != 2 {
		t.Fatalf("socks to site B: reply %d, %v; want 2", rep, err)
	}
	line := lineOf(t, epp.Conf, "name: downcall-socks", "- action: deny", 0)
	epp.WaitLog(t, 0, 20*time.Second, `refused: destination 127\.0\.2\.7:`+strconv.Itoa(int(siteB.port))+
		` for client 127\.0\.0\.1 of entry downcall-socks: denied by rule 0 \(`+regexp.QuoteMeta(epp.Conf)+`:`+strconv.Itoa(line)+`\).*rule=0`)
	if _, st, err := muxtest.HTTPConnect(connect, "127.0.2.7", siteB.port, "", ""); err != nil || st != 403 {
		t.Fatalf("connect to site B: %d, %v; want 403", st, err)
	}
	epp.WaitLog(t, 0, 20*time.Second, `of entry downcall-connect: denied by rule 0 \(`)

	// No rule matches: a default deny, named with the entry.
	if _, rep, err := muxtest.SOCKSConnect(socks, "127.0.4.7", 22, "", ""); err != nil || rep != 2 {
		t.Fatalf("socks to 127.0.4.7: reply %d, %v; want 2", rep, err)
	}
	line = lineOf(t, epp.Conf, "# Such an entry denies by default", "- name: downcall-socks", 0)
	epp.WaitLog(t, 0, 20*time.Second, `refused: destination 127\.0\.4\.7:22 for client 127\.0\.0\.1 of entry downcall-socks: denied by default deny \(no rule of entry downcall-socks at `+
		regexp.QuoteMeta(epp.Conf)+`:`+strconv.Itoa(line)+` matched\).*rule=-1`)
	if _, st, err := muxtest.HTTPConnect(connect, "127.0.4.7", 22, "", ""); err != nil || st != 403 {
		t.Fatalf("connect to 127.0.4.7: %d, %v; want 403", st, err)
	}

	// Allowed, but no node serves it: no route.
	if _, rep, err := muxtest.SOCKSConnect(socks, "127.0.3.7", 22, "", ""); err != nil || rep != 3 {
		t.Fatalf("socks to 127.0.3.7: reply %d, %v; want 3", rep, err)
	}
	if _, st, err := muxtest.HTTPConnect(connect, "127.0.3.7", 22, "", ""); err != nil || st != 502 {
		t.Fatalf("connect to 127.0.3.7: %d, %v; want 502", st, err)
	}

	st, err := nodeStatus(t, c, e2etest.Node{Name: "epp-main", Daemon: "epproxy"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Stats.DeniedByRules != 4 {
		t.Errorf("epp-main status: %d denied by rules, want 4", st.Stats.DeniedByRules)
	}
	select {
	case err := <-siteB.ended:
		t.Errorf("site B was dialled: %v", err)
	default:
	}
	if log := c.Proc("gwp-site-b").LogSince(0); strings.Contains(log, "session: opened") {
		t.Errorf("gwp-site-b carried a session; every one to it was denied:\n%s", log)
	}
}

// gwp-site-a's own rule on its networks (serves_rules) denies one
// address inside them: a session that names it, here from a scripted
// parent as a forged open header would, is refused there with the rule
// named, and the rest of its networks are still served.
func TestServesRulesRefuseAtTheGWProxy(t *testing.T) {
	siteA := startSiteEndpoint(t, "127.0.1.7", "endpoint-a")
	siteA8 := startSiteEndpoint(t, "127.0.1.8", "endpoint-a8")
	c := e2etest.NewChain(t, e2etest.Options{Nodes: e2etest.SessionNodes, Tuning: e2etest.FastTuning,
		Edit: func(node, text string) string {
			if node != "gwp-site-a" {
				return text
			}
			return text + "serves_rules:\n  - action: deny\n    origins: [epp-*]\n    nets: [127.0.1.7]\n"
		}})
	c.StartAll()
	waitFormed(t, c, 0)
	gwp := c.Proc("gwp-site-a")
	socks := c.Addr(e2etest.PortSOCKS)
	e2etest.Eventually(t, 20*time.Second, "127.0.1.8 by address", func() error {
		conn, rep, err := muxtest.SOCKSConnect(socks, "127.0.1.8", siteA8.port, "", "")
		if err != nil || rep != 0 {
			return errors.New("socks reply " + strconv.Itoa(int(rep)) + ": " + errString(err))
		}
		defer conn.Close()
		if got, err := readLine(conn); err != nil || got != "endpoint-a8" {
			t.Fatalf("reached %q, %v", got, err)
		}
		return nil
	})
	if _, rep, err := muxtest.SOCKSConnect(socks, "127.0.1.7", siteA.port, "", ""); err != nil || rep != 2 {
		t.Fatalf("socks to 127.0.1.7: reply %d, %v; want 2", rep, err)
	}
	line := lineOf(t, gwp.Conf, "serves_rules:", "- action: deny", 0)
	gwp.WaitLog(t, 0, 20*time.Second, `refused: destination 127\.0\.1\.7:`+strconv.Itoa(int(siteA.port))+
		` for epp-main: denied by rule 0 \(`+regexp.QuoteMeta(gwp.Conf)+`:`+strconv.Itoa(line)+`\)`)
	c.Proc("epp-main").WaitLog(t, 0, 20*time.Second, `open failed.*denied \(at gwp-site-a\): destination 127\.0\.1\.7:`)
	select {
	case err := <-siteA.ended:
		t.Errorf("127.0.1.7 was dialled: %v", err)
	default:
	}
	st, err := nodeStatus(t, c, e2etest.Node{Name: "gwp-site-a", Daemon: "gwproxy"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Stats.DeniedByRules != 1 || st.Stats.DeniedDestinations != 0 {
		t.Errorf("gwp-site-a status: %d denied by rules (want 1), %d denied destinations (want 0)", st.Stats.DeniedByRules, st.Stats.DeniedDestinations)
	}
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}
