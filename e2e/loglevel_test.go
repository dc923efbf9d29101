package e2e

import (
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
