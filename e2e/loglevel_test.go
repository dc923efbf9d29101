package e2e

import (
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaychain/relaychain/e2e/e2etest"
)

var reLogLevel = regexp.MustCompile(`^\d\d/\d\d/\d\d \d\d:\d\d:\d\d\.\d\d\d (\d) `)

// linesAbove returns the log lines of p after offset from whose level is
// above max.
func linesAbove(t testing.TB, p *e2etest.Process, from int64, max int) []string {
	t.Helper()
	return logLines(p, from, func(n int) bool { return n > max })
}

// logLines returns the log lines of p after offset from whose level
// satisfies keep.
func logLines(p *e2etest.Process, from int64, keep func(level int) bool) []string {
	b, err := os.ReadFile(p.Log)
	if err != nil || int64(len(b)) <= from {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b[from:]), "\n") {
		m := reLogLevel.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		if n, _ := strconv.Atoi(m[1]); keep(n) {
			out = append(out, l)
		}
	}
	return out
}

// TestLogLevelSignals runs a relay at level 2 and changes its level while
// it runs: SIGUSR1 raises it (a link event is then logged at level 3),
// SIGUSR2 lowers it (the next link event shows only its level-2 line),
// SIGHUP re-reads it from the edited file (level 4 lines appear), and a
// SIGHUP with a broken file keeps the level.
func TestLogLevelSignals(t *testing.T) {
	c := e2etest.NewChain(t, e2etest.Options{
		Edit: func(node, text string) string {
			if node == "relay-dmz2" {
				text = strings.Replace(text, "level: 3", "level: 2", 1)
			}
			return text
		},
		Tuning: e2etest.FastTuning,
	})
	relay := c.Start("relay-dmz2")
	linkAddr := c.Addr(e2etest.PortDMZ2Out)
	e2etest.Eventually(t, 10*time.Second, "relay-dmz2 listening on "+linkAddr, func() error {
		if relay.Exited() {
			t.Fatalf("relay exited: %v\n%s", relay.Err(), e2etest.FileText(relay.Out))
		}
		if !e2etest.Listening(relay.Pid(), linkAddr) {
			return os.ErrNotExist
		}
		return nil
	})
	if l := linesAbove(t, relay, 0, 2); len(l) > 0 {
		t.Fatalf("level-3 lines at level 2:\n%s", strings.Join(l, "\n"))
	}

	// SIGUSR1: 2 -> 3, and a link coming up is logged at level 3.
	relay.Signal(t, syscall.SIGUSR1)
	off := relay.WaitLog(t, 0, 10*time.Second, `2 log: level changed from 2 to 3 \[by=SIGUSR1\]`)
	gwp := c.Start("gwp-site-a")
	relay.WaitLog(t, off, 10*time.Second, `3 link: link up \[.*l=gwp-site-a`, "3 "+e2etest.RouteAdded("gwp-site-a"))

	// SIGUSR2: 3 -> 2; the link going down shows its level-2 line only.
	relay.Signal(t, syscall.SIGUSR2)
	off = relay.WaitLog(t, off, 10*time.Second, `2 log: level changed from 3 to 2 \[by=SIGUSR2\]`)
	gwp.Stop(t)
	// "route removed" (level 3) comes before "link down" (level 2).
	relay.WaitLog(t, off, 10*time.Second, `2 link: link down \[.*l=gwp-site-a`)
	if l := linesAbove(t, relay, off, 2); len(l) > 0 {
		t.Fatalf("level-3 lines after SIGUSR2 lowered the level to 2:\n%s", strings.Join(l, "\n"))
	}

	// SIGHUP re-reads the level from the file: 2 -> 4.
	conf := relay.Conf
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	good := string(b)
	writeConf := func(text string) {
		t.Helper()
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConf(strings.Replace(good, "level: 2", "level: 4", 1))
	relay.Signal(t, syscall.SIGHUP)
	off = relay.WaitLog(t, off, 10*time.Second, `2 log: level changed from 2 to 4 \[by=SIGHUP\]`)
	c.Start("gwp-site-a")
	off = relay.WaitLog(t, off, 10*time.Second, `3 link: link up \[.*l=gwp-site-a`, `4 routing: .*command sent`)

	// SIGHUP with a broken file: the error is logged, the level kept.
	writeConf(strings.Replace(good, "level: 2", "level: loud", 1))
	relay.Signal(t, syscall.SIGHUP)
	off = relay.WaitLog(t, off, 10*time.Second, `1 log: reload failed, level kept`)
	writeConf(strings.Replace(good, "level: 2", "level: 4", 1))
	relay.Signal(t, syscall.SIGHUP)
	relay.WaitLog(t, off, 10*time.Second, `2 log: level stays 4 \[by=SIGHUP\]`)
}

// TestSessionStepsAtLevel4 runs the chain at level 4 and follows one
// upcall from gwp-site-a to the gateway on all four hops: each logs the
// session's steps with the one id the entry chose (open, route, dial at
// the destination, status, both half-closes) and its end with the same
// outcome and payload bytes. Then a session whose client resets is logged
// aborted by the client on every hop, the relays included.
func TestSessionStepsAtLevel4(t *testing.T) {
	tg := startTargets(t)
	c := e2etest.NewChain(t, e2etest.Options{
		Nodes: e2etest.SessionNodes, Fixed: tg.fixedPorts(), Tuning: e2etest.FastTuning,
		Edit: func(_, text string) string { return strings.Replace(text, "level: 3", "level: 4", 1) },
	})
	c.StartAll()
	waitFormed(t, c, 0)
	hops := []string{"gwp-site-a", "relay-dmz2", "relay-dmz1", "epp-main"}
	offs := map[string]int64{}
	mark := func() {
		for _, h := range hops {
			offs[h] = c.Proc(h).LogSize()
		}
	}
	entry := c.Proc("gwp-site-a")

	// sessionID is the id the entry logged for the client on conn.
	sessionID := func(cs *clientSession) string {
		t.Helper()
		port := strconv.Itoa(cs.conn.LocalAddr().(*net.TCPAddr).Port)
		entry.WaitLog(t, offs["gwp-site-a"], 20*time.Second, `3 session: opened \[client=127\.0\.0\.1:`+port+` `)
		for _, l := range strings.Split(entry.LogSince(offs["gwp-site-a"]), "\n") {
			if strings.Contains(l, "session: opened [client=127.0.0.1:"+port+" ") {
				return e2etest.LogFields(l)["id"]
			}
		}
		t.Fatal("no opened line for the client")
		return ""
	}
	// ends checks that every hop logged the session's end as want.
	ends := func(id, outcome, who string, up, down int64) {
		t.Helper()
		for _, h := range hops {
			p := c.Proc(h)
			p.WaitLog(t, offs[h], 20*time.Second, `3 session: (closed|aborted) \[.*id=`+id+` `)
			var end map[string]string
			for _, l := range p.SessionLines(offs[h], id) {
				if strings.Contains(l, "3 session: closed [") || strings.Contains(l, "3 session: aborted [") {
					end = e2etest.LogFields(l)
					end["outcome"] = strings.Fields(strings.SplitN(l, "session: ", 2)[1])[0]
				}
			}
			want := map[string]string{"outcome": outcome, "who": who, "up": strconv.FormatInt(up, 10), "down": strconv.FormatInt(down, 10)}
			for k, v := range want {
				if end[k] != v {
					t.Errorf("%s: %s=%q, want %q; its lines of session %s:\n%s", h, k, end[k], v, id, strings.Join(p.SessionLines(offs[h], id), "\n"))
				}
			}
		}
	}

	mark()
	p := plan{up: 1000, down: 3000}
	cs := startSession(t, c.Addr(e2etest.PortUpA), p)
	id := sessionID(cs)
	if err := checkClean(cs.wait(t, 60*time.Second), tg.gateway.result(t, cs.id, 30*time.Second), p); err != nil {
		t.Fatal(err)
	}
	ends(id, "closed", "", headerLen+p.up, p.down)
	steps := map[string][]string{
		"gwp-site-a": {"route chosen", "status", "half-close.*by=client", "half-close.*by=target"},
		"relay-dmz2": {"open received", "route chosen", "status", "half-close.*by=client", "half-close.*by=target"},
		"relay-dmz1": {"open received", "route chosen", "status", "half-close.*by=client", "half-close.*by=target"},
		"epp-main":   {"open received", "dial", "status", "half-close.*by=client", "half-close.*by=target"},
	}
	for h, want := range steps {
		lines := strings.Join(c.Proc(h).SessionLines(offs[h], id), "\n")
		for _, s := range want {
			if !regexp.MustCompile(`4 session: ` + s).MatchString(lines) {
				t.Errorf("%s: no level-4 step %q for session %s; its lines:\n%s", h, s, id, lines)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// The client resets once every byte both ways has arrived.
	mark()
	p = plan{up: 1000, down: 3000, hold: true}
	cs = startSession(t, c.Addr(e2etest.PortUpA), p)
	id = sessionID(cs)
	ts := tg.gateway.session(cs.id)
	e2etest.Eventually(t, 30*time.Second, "every byte to arrive", func() error {
		if r, s := cs.pr.recv.Load(), ts.pr.recv.Load(); r != p.down || s != p.up {
			return fmt.Errorf("client received %d of %d, target %d of %d", r, p.down, s, p.up)
		}
		return nil
	})
	_ = cs.conn.SetLinger(0)
	_ = cs.conn.Close()
	ends(id, "aborted", "client", headerLen+p.up, p.down)
}
