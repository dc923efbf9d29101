package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaychain/relaychain/e2e/e2etest"
)

// lineOf is the 1-based line of the n-th (from 0) line of path, after the
// line that contains after, that equals line once trimmed.
func lineOf(t *testing.T, path, after, line string, n int) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	seen := false
	for i, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, after) {
			seen = true
		}
		if seen && strings.TrimSpace(l) == line {
			if n == 0 {
				return i + 1
			}
			n--
		}
	}
	t.Fatalf("%s: no %q after %q", path, line, after)
	return 0
}

// refusedClient connects to entry from the source address from, sends a
// few bytes and checks that nothing comes back before the end.
func refusedClient(t *testing.T, from, entry string) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", entry)
	if errors.Is(err, syscall.ECONNRESET) {
		return // reset before the dial returned
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	_, _ = io.WriteString(c, "denied?")
	if b, err := io.ReadAll(c); len(b) != 0 || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("a refused client of %s read %q, %v; want nothing and the end", entry, b, err)
	}
}

// The downcall entry of site A allows only 127.0.0.1 (configs/example);
// gwp-site-a's endpoint service gets a rule that denies the root, and
// gwp-site-b's an allow list without it. Each refusal names its rule and
// the file and line where it is written, and is counted in status.
func TestRulesRefuseWithTheRuleNamed(t *testing.T) {
	tg := startTargets(t)
	c := e2etest.NewChain(t, e2etest.Options{Nodes: e2etest.SessionNodes, Fixed: tg.fixedPorts(), Tuning: e2etest.FastTuning,
		Edit: func(node, text string) string {
			switch node {
			case "gwp-site-a":
				return strings.Replace(text, "    addrs: [", "    rules:\n      - action: allow\n        origins: [gwp-*]\n      - action: deny\n        origins: [epp-*]\n    addrs: [", 1)
			case "gwp-site-b":
				return strings.Replace(text, "    addrs: [", "    allow: [gwp-site-a]\n    addrs: [", 1)
			}
			return text
		}})
	c.StartAll()
	waitFormed(t, c, 0)
	epp, gwpA, gwpB := c.Proc("epp-main"), c.Proc("gwp-site-a"), c.Proc("gwp-site-b")

	// A client from another address: the entry's rule 1, the catch-all deny.
	refusedClient(t, "127.0.0.2", c.Addr(e2etest.PortDownA))
	line := lineOf(t, epp.Conf, "name: downcall-site-a", "- action: deny", 0)
	epp.WaitLog(t, 0, 20*time.Second, `refused: client 127\.0\.0\.2 of entry downcall-site-a: denied by rule 1 \(`+
		regexp.QuoteMeta(epp.Conf)+`:`+strconv.Itoa(line)+`\).*rule=1`)

	// From the gateway's host the entry allows; gwp-site-a's rule 1 denies.
	skip := epp.LogSize()
	refusedClient(t, "127.0.0.1", c.Addr(e2etest.PortDownA))
	line = lineOf(t, gwpA.Conf, "name: endpoint", "- action: deny", 0)
	where := regexp.QuoteMeta(gwpA.Conf) + `:` + strconv.Itoa(line)
	gwpA.WaitLog(t, 0, 20*time.Second, `refused: service endpoint for epp-main: denied by rule 1 \(`+where+`\)`)
	epp.WaitLog(t, skip, 20*time.Second, `open failed.*denied \(at gwp-site-a\): service endpoint for epp-main: denied by rule 1 \(`+where+`\)`)

	// gwp-site-b's allow list denies every origin it does not name.
	refusedClient(t, "127.0.0.1", c.Addr(e2etest.PortDownB))
	gwpB.WaitLog(t, 0, 20*time.Second, `refused: epp-main may not use service endpoint: not in its allow list`)

	for _, p := range []*e2etest.Process{gwpA, gwpB} {
		if log := p.LogSince(0); strings.Contains(log, "session: opened") {
			t.Errorf("%s dialled an endpoint; every session was denied:\n%s", p.Name, log)
		}
	}
	for _, n := range []e2etest.Node{{Name: "epp-main", Daemon: "epproxy"}, {Name: "gwp-site-a", Daemon: "gwproxy"}, {Name: "gwp-site-b", Daemon: "gwproxy"}} {
		st, err := nodeStatus(t, c, n)
		if err != nil {
			t.Fatal(err)
		}
		if st.Stats.DeniedByRules != 1 {
			t.Errorf("%s status: %d denied by rules, want 1", n.Name, st.Stats.DeniedByRules)
		}
	}

	// The upcalls, which no rule denies, still go through.
	for _, r := range entryRoutes(c, tg)[:2] {
		if err := routeSession(t, r); err != nil {
			t.Errorf("%s: %v", r.name, err)
		}
	}
}

// gwp-site-a dials relay-dmz2 from a pinned source port: relay-dmz2 sees
// the link from that port, and again after it was killed and restarted.
func TestPinnedSourcePortSurvivesRestart(t *testing.T) {
	tg := startTargets(t)
	src := "127.0.0.1:" + strconv.Itoa(e2etest.FreePort(t))
	reDial := regexp.MustCompile(`(?m)^    dial: 127\.0\.0\.1:\d+\n`)
	c := e2etest.NewChain(t, e2etest.Options{Nodes: e2etest.SessionNodes, Fixed: tg.fixedPorts(), Tuning: e2etest.FastTuning,
		Edit: func(node, text string) string {
			if node != "gwp-site-a" {
				return text
			}
			loc := reDial.FindStringIndex(text)
			if loc == nil {
				t.Fatalf("no parent dial in gwp-site-a's configuration:\n%s", text)
			}
			return text[:loc[1]] + "    source: " + src + "\n" + text[loc[1]:]
		}})
	c.StartAll()
	waitFormed(t, c, 0)
	linkSocket(t, c.Proc("relay-dmz2"), src)
	upA := entryRoutes(c, tg)[0]
	if err := routeSession(t, upA); err != nil {
		t.Fatalf("before the restart: %v", err)
	}

	skip := c.Proc("epp-main").LogSize()
	restartRelay(t, c, nil)
	waitFormed(t, c, skip)
	e2etest.Eventually(t, 20*time.Second, "relay-dmz2's link from the pinned port", func() error {
		fds, err := e2etest.OpenFDs(c.Proc("relay-dmz2").Pid())
		if err != nil {
			return err
		}
		for _, s := range fds.Sockets {
			if s.State == e2etest.StateEstablished && s.Remote == src {
				return nil
			}
		}
		return errNotYet(fds.String())
	})
	if err := routeSession(t, upA); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
}

type errNotYet string

func (e errNotYet) Error() string { return "not yet: " + string(e) }

// epp-main's downcall entry of site A listens on two loopback addresses:
// a session through each reaches endpoint A.
func TestEntryListensOnTwoAddresses(t *testing.T) {
	tg := startTargets(t)
	var port string
	reListen := regexp.MustCompile(`listen: 127\.0\.0\.1:(\d+)\n    dest: gwp-site-a`)
	c := e2etest.NewChain(t, e2etest.Options{Nodes: e2etest.SessionNodes, Fixed: tg.fixedPorts(), Tuning: e2etest.FastTuning,
		Edit: func(node, text string) string {
			if node != "epp-main" {
				return text
			}
			m := reListen.FindStringSubmatch(text)
			if m == nil {
				t.Fatalf("no downcall-site-a listen in epp-main's configuration:\n%s", text)
			}
			port = m[1]
			return strings.Replace(text, m[0], "listen: [127.0.0.1:"+port+", 127.0.0.2:"+port+"]\n    dest: gwp-site-a", 1)
		}})
	c.StartAll()
	waitFormed(t, c, 0)
	for _, addr := range []string{"127.0.0.1:" + port, "127.0.0.2:" + port} {
		if !e2etest.Listening(c.Proc("epp-main").Pid(), addr) {
			t.Errorf("epp-main does not listen on %s", addr)
		}
		if err := routeSession(t, entryRoute{name: addr, entry: addr, tg: tg.endpointA}); err != nil {
			t.Errorf("downcall through %s: %v", addr, err)
		}
	}
}

// A rule after the catch-all of epp-main's downcall entry can never match:
// "check" and "chain check" say so, with its line and the rule before it.
func TestCheckShadowedRule(t *testing.T) {
	dir := e2etest.NewChain(t, e2etest.Options{}).Dir // with the certificates "check" reads
	conf := filepath.Join(dir, "epp-main", "epproxy.yaml")
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	old := "        sources: [127.0.0.1]\n      - action: deny\n"
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s: no catch-all deny after the rule for 127.0.0.1", conf)
	}
	text := strings.Replace(string(b), old, old+"      - action: allow\n        sources: [127.0.0.2]\n", 1)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	deny := lineOf(t, conf, "name: downcall-site-a", "- action: deny", 0)
	want := fmt.Sprintf("%s:%d: entries[0].rules[2]: can never match: entries[0].rules[1] (line %d) matches everything it does", conf, deny+1, deny)
	_, stderr, code := e2etest.RunCommand(t, t.TempDir(), e2etest.Bin(t, "relay"), "chain", "check", dir)
	if code != 1 || !strings.Contains(stderr, want+"\n") {
		t.Errorf("chain check: exit %d, stderr:\n%s\nwant exit 1 and %s", code, stderr, want)
	}
	_, stderr, code = e2etest.RunCommand(t, t.TempDir(), e2etest.Bin(t, "epproxy"), "check", "--config", conf)
	if code != 1 || !strings.Contains(stderr, want+"\n") {
		t.Errorf("epproxy check: exit %d, stderr:\n%s\nwant exit 1 and %s", code, stderr, want)
	}
}

// A reload that gives epp-main's downcall entry of site B a catch-all deny
// puts it in force at once, the rule named in the log with its new line.
func TestReloadRules(t *testing.T) {
	tg := startTargets(t)
	c := startChain(t, tg)
	epp := c.Proc("epp-main")
	downB := entryRoutes(c, tg)[3]
	if err := routeSession(t, downB); err != nil {
		t.Fatalf("before the reload: %v", err)
	}
	b, err := os.ReadFile(epp.Conf)
	if err != nil {
		t.Fatal(err)
	}
	old := "    dest: gwp-site-b\n    service: endpoint\n"
	if !strings.Contains(string(b), old) {
		t.Fatalf("no downcall-site-b entry in %s", epp.Conf)
	}
	text := strings.Replace(string(b), old, old+"    rules:\n      - action: deny\n", 1)
	if err := os.WriteFile(epp.Conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	skip := epp.LogSize()
	epp.Signal(t, syscall.SIGHUP)
	epp.WaitLog(t, skip, 10*time.Second, `3 config: entry downcall-site-b changed on `+regexp.QuoteMeta(downB.entry)+` for endpoint at gwp-site-b\n`)
	refusedClient(t, "127.0.0.1", downB.entry)
	line := lineOf(t, epp.Conf, "dest: gwp-site-b", "- action: deny", 0)
	epp.WaitLog(t, skip, 20*time.Second, `refused: client 127\.0\.0\.1 of entry downcall-site-b: denied by rule 0 \(`+
		regexp.QuoteMeta(epp.Conf)+`:`+strconv.Itoa(line)+`\)`)
}
