package e2e

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaychain/relaychain/e2e/e2etest"
	"github.com/relaychain/relaychain/mux"
)

// allNodes is the whole example chain: the session nodes and es-site-a.
var allNodes = append(slices.Clone(e2etest.SessionNodes), e2etest.Node{Name: "es-site-a", Daemon: "eventsink"})

// exampleTree is the example chain's tree, "label(state)" by depth.
const exampleTree = `epp-main(ok)
  relay-dmz1(ok)
    relay-dmz2(ok)
      gwp-site-a(ok)
        es-site-a(ok)
      gwp-site-b(ok)
`

func treeLines(t mux.TreeNode) string {
	var b strings.Builder
	t.Walk(func(n mux.TreeNode, depth int) {
		fmt.Fprintf(&b, "%s%s(%s)\n", strings.Repeat("  ", depth), n.Label, n.State)
	})
	return b.String()
}

// rootTree runs "epproxy status --tree" at epp-main, with --json when asked.
func rootTree(t *testing.T, c *e2etest.Chain, asJSON bool) (string, string, int) {
	t.Helper()
	args := []string{"status", "--tree", "--config", filepath.Join(c.NodeDir("epp-main"), "epproxy.yaml")}
	if asJSON {
		args = append(args, "--json")
	}
	return e2etest.RunCommand(t, c.NodeDir("epp-main"), e2etest.Bin(t, "epproxy"), args...)
}

func rootTreeJSON(t *testing.T, c *e2etest.Chain) (mux.TreeNode, error) {
	t.Helper()
	var tree mux.TreeNode
	out, errOut, code := rootTree(t, c, true)
	if code != 0 {
		return tree, fmt.Errorf("epproxy status --tree: exit %d: %s", code, errOut)
	}
	if err := json.Unmarshal([]byte(out), &tree); err != nil {
		return tree, fmt.Errorf("epproxy status --tree: %v in %q", err, out)
	}
	return tree, nil
}

// scrapeEnded reads relaychain_sessions_ended_total by outcome from the
// metrics at addr.
func scrapeEnded(addr string) (map[string]float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	re := regexp.MustCompile(`^relaychain_sessions_ended_total\{outcome="([a-z_]+)"\} (\S+)$`)
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			v, err := strconv.ParseFloat(m[2], 64)
			if err != nil {
				return nil, err
			}
			out[m[1]] = v
		}
	}
	return out, sc.Err()
}

func TestStatusTree(t *testing.T) {
	tg := startTargets(t)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", e2etest.FreePort(t))
	c := e2etest.NewChain(t, e2etest.Options{Nodes: allNodes, Fixed: tg.fixedPorts(), Tuning: e2etest.FastTuning,
		Edit: func(node, text string) string {
			if node == "epp-main" {
				text += "\nadmin:\n  listen: " + metricsAddr + "\n"
			}
			return text
		}})
	c.StartAll()
	waitFormed(t, c, 0)

	// Every node shows, and answers.
	var tree mux.TreeNode
	e2etest.Eventually(t, 30*time.Second, "the whole tree", func() error {
		var err error
		if tree, err = rootTreeJSON(t, c); err != nil {
			return err
		}
		if got := treeLines(tree); got != exampleTree {
			return fmt.Errorf("tree:\n%s", got)
		}
		return nil
	})
	roles := map[string]string{"epp-main": "root", "relay-dmz1": "relay", "relay-dmz2": "relay",
		"gwp-site-a": "leaf", "gwp-site-b": "leaf", "es-site-a": "leaf"}
	tree.Walk(func(n mux.TreeNode, _ int) {
		if n.Role != roles[n.Label] || n.Version == "" || n.Uptime <= 0 {
			t.Errorf("%s: role %q, version %q, uptime %s", n.Label, n.Role, n.Version, n.Uptime)
		}
	})
	out, errOut, code := rootTree(t, c, false)
	if code != 0 {
		t.Fatalf("epproxy status --tree: exit %d: %s", code, errOut)
	}
	t.Logf("epproxy status --tree:\n%s", out)
	for _, want := range []string{
		`(?m)^NODE +ROLE +VERSION +STATE +UPTIME +SESSIONS +LINK FROM PARENT +DETAIL$`,
		`(?m)^epp-main +root +\S+ +ok +\S+ +\d+ +- *$`,
		`(?m)^└─ relay-dmz1 +relay +\S+ +ok +\S+ +\d+ +up \S+(, rtt \S+)? *$`,
		`(?m)^   └─ relay-dmz2 +relay +\S+ +ok `,
		`(?m)^      ├─ gwp-site-a +leaf +\S+ +ok `,
		`(?m)^      │  └─ es-site-a +leaf +\S+ +ok `,
		`(?m)^      └─ gwp-site-b +leaf +\S+ +ok `,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("status --tree does not match %s", want)
		}
	}

	// Only the root shows the tree.
	relayConf := filepath.Join(c.NodeDir("relay-dmz1"), "relay.yaml")
	_, errOut, code = e2etest.RunCommand(t, c.NodeDir("relay-dmz1"), e2etest.Bin(t, "relay"), "status", "--tree", "--config", relayConf)
	if code != 1 || !strings.Contains(errOut, "only the root can show the tree: relay-dmz1 is a relay") ||
		!strings.Contains(errOut, "run epproxy status --tree on the root") {
		t.Errorf("relay status --tree: exit %d, %q", code, errOut)
	}

	// Sessions, counted by outcome at the root: two upcalls closed, one
	// downcall refused (site B's endpoint is gone), one aborted by its
	// client.
	before, err := scrapeEnded(metricsAddr)
	if err != nil {
		t.Fatal(err)
	}
	routes := entryRoutes(c, tg)
	for range 2 {
		p := plan{up: 10 << 10, down: 20 << 10}
		cs := startSession(t, routes[0].entry, p)
		if err := checkClean(cs.wait(t, 30*time.Second), routes[0].tg.result(t, cs.id, 30*time.Second), p); err != nil {
			t.Fatal(err)
		}
	}
	tg.endpointB.close()
	// The entry resets its client as soon as the open is refused, which on a
	// loaded machine can come before the client's connect has returned: a
	// dial or header write that fails with a reset is that refusal too.
	if cs := startSession(t, routes[3].entry, plan{up: 10, down: 10}); cs.err == nil {
		if cl := cs.wait(t, 30*time.Second); cl.recv.n != 0 || cl.end == endClean {
			t.Errorf("downcall to a closed endpoint: %v", cl)
		}
	} else if !errors.Is(cs.err, syscall.ECONNRESET) {
		t.Errorf("downcall to a closed endpoint: %v", cs.err)
	}
	abortSession(t, c, routes[0].entry)
	want := map[string]float64{"closed": 2, "refused": 1, "aborted": 1}
	e2etest.Eventually(t, 20*time.Second, "the sessions counted", func() error {
		after, err := scrapeEnded(metricsAddr)
		if err != nil {
			return err
		}
		for _, o := range mux.SessionOutcomes() {
			if got := after[o] - before[o]; got != want[o] {
				return fmt.Errorf("outcome %s: %v more, want %v (before %v, after %v)", o, got, want[o], before, after)
			}
		}
		return nil
	})

	// relay-dmz2 dies: it and everything below it shows unreachable, as
	// last known.
	c.Proc("relay-dmz2").Kill(t)
	e2etest.Eventually(t, 30*time.Second, "relay-dmz2's subtree unreachable", func() error {
		var err error
		if tree, err = rootTreeJSON(t, c); err != nil {
			return err
		}
		want := strings.NewReplacer("relay-dmz2(ok)", "relay-dmz2(unreachable)", "gwp-site-a(ok)", "gwp-site-a(unreachable)",
			"es-site-a(ok)", "es-site-a(unreachable)", "gwp-site-b(ok)", "gwp-site-b(unreachable)").Replace(exampleTree)
		if got := treeLines(tree); got != want {
			return fmt.Errorf("tree:\n%s", got)
		}
		return nil
	})
	out, _, _ = rootTree(t, c, false)
	t.Logf("epproxy status --tree, relay-dmz2 killed:\n%s", out)
	for _, want := range []string{
		`(?m)^   └─ relay-dmz2 +relay +\S+ +unreachable +- +- +down \S+ +link down; last answer `,
		`(?m)^      ├─ gwp-site-a +leaf +\S+ +unreachable +- +- +- +below relay-dmz2; last answer `,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("status --tree does not match %s:\n%s", want, out)
		}
	}
}

// abortSession opens a session on entry that holds, waits until the root
// carries it, and resets it from the client.
func abortSession(t *testing.T, c *e2etest.Chain, entry string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", entry, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tc := conn.(*net.TCPConn)
	var hdr [headerLen]byte
	binary.BigEndian.PutUint64(hdr[0:], nextID.Add(1))
	hdr[16] = flagHold
	if _, err := tc.Write(hdr[:]); err != nil {
		t.Fatal(err)
	}
	e2etest.Eventually(t, 20*time.Second, "the root to carry the session", func() error {
		st, err := nodeStatus(t, c, e2etest.Node{Name: "epp-main", Daemon: "epproxy"})
		if err != nil {
			return err
		}
		if st.Sessions != 1 {
			return fmt.Errorf("%d sessions", st.Sessions)
		}
		return nil
	})
	_ = tc.SetLinger(0)
	_ = tc.Close()
}
