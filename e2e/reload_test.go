package e2e

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaychain/relaychain/e2e/e2etest"
)

// TestReload edits the epproxy's configuration while sessions run and
// sends SIGHUP:
//
//   - a new entry, the service "gateway" removed and shutdown_grace 5s ->
//     1s: each change is logged in one line, then a summary; a downcall on
//     an entry that did not change, paused mid-upload across the reload,
//     completes with every byte both ways (SHA-256 checked); an upcall to
//     the removed service, paused likewise, is aborted once the new grace
//     ends; the new entry carries a session; a new upcall is refused;
//   - a file with an unknown key: every problem is logged and nothing
//     changes (both entries still carry sessions, the gateway is still
//     gone);
//   - a new events file: refused, a restart is needed; nothing changes.
func TestReload(t *testing.T) {
	tg := startTargets(t)
	c := startChain(t, tg)
	routes := entryRoutes(c, tg)
	upA, downA := routes[0], routes[2]
	epp := c.Proc("epp-main")

	// Two sessions paused half-way through their upload: a downcall on an
	// entry that stays, an upcall to the service that goes.
	pause := func() plan {
		return plan{up: 8 << 20, down: 8 << 20, gate: &gate{at: 4 << 20, open: make(chan struct{})}}
	}
	keepP, goneP := pause(), pause()
	keep := startSession(t, downA.entry, keepP)
	gone := startSession(t, upA.entry, goneP)
	for _, s := range []struct {
		r  entryRoute
		cs *clientSession
	}{{downA, keep}, {upA, gone}} {
		ts := s.r.tg.session(s.cs.id)
		e2etest.Eventually(t, 20*time.Second, s.r.name+": half the upload arrived", func() error {
			if n := ts.pr.recv.Load(); n < 4<<20 {
				return fmt.Errorf("the target has %d bytes", n)
			}
			return nil
		})
	}

	b, err := os.ReadFile(epp.Conf)
	if err != nil {
		t.Fatal(err)
	}
	orig := string(b)
	gatewayService := regexp.MustCompile(`(?m)^services:\n(?:\s*#.*\n)?\s*- name: gateway\n\s*addrs: \[[^\]]*\]\n`)
	if !gatewayService.MatchString(orig) {
		t.Fatalf("no gateway service in %s:\n%s", epp.Conf, orig)
	}
	newEntry := c.Addr(e2etest.PortDownA)
	newEntry = newEntry[:strings.LastIndex(newEntry, ":")] + fmt.Sprintf(":%d", e2etest.FreePort(t))
	next := gatewayService.ReplaceAllString(orig, "")
	next = strings.Replace(next, "entries:\n", fmt.Sprintf("entries:\n  - name: downcall-site-a2\n    listen: %s\n    dest: gwp-site-a\n    service: endpoint\n", newEntry), 1)
	next = strings.Replace(next, "shutdown_grace: 5s", "shutdown_grace: 1s", 1)
	writeConf := func(text string) {
		t.Helper()
		if err := os.WriteFile(epp.Conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	writeConf(next)
	skip := epp.LogSize()
	epp.Signal(t, syscall.SIGHUP)
	off := epp.WaitLog(t, skip, 10*time.Second,
		`3 config: service gateway removed\n`,
		`3 config: entry downcall-site-a2 added on `+regexp.QuoteMeta(newEntry)+` for endpoint at gwp-site-a\n`,
		`3 config: shutdown_grace 5s -> 1s\n`,
		`3 config: configuration reloaded from .*: 3 changes applied\n`)
	if l := logLines(epp, skip, func(n int) bool { return n == 1 }); len(l) > 0 {
		t.Errorf("errors from the reload:\n%s", strings.Join(l, "\n"))
	}

	// The session on the removed service is aborted when the grace ends.
	epp.WaitLog(t, off, 10*time.Second, `session: aborted \[.*removed by a reconfiguration.*service=gateway`)
	close(goneP.gate.open)
	if cl := gone.wait(t, 30*time.Second); cl.end == endClean {
		t.Errorf("the upcall to the removed service ended cleanly: %v", cl)
	}
	// The session on the unchanged entry goes on with every byte.
	close(keepP.gate.open)
	cl := keep.wait(t, 30*time.Second)
	if err := checkClean(cl, downA.tg.result(t, keep.id, 30*time.Second), keepP); err != nil {
		t.Errorf("the downcall across the reload: %v", err)
	}
	added := entryRoute{"the added entry", newEntry, tg.endpointA}
	if err := routeSession(t, added); err != nil {
		t.Errorf("%s: %v", added.name, err)
	}
	if err := routeSession(t, upA); err == nil {
		t.Error("an upcall reached the removed gateway service")
	}

	// A broken file: every problem logged, nothing changed.
	writeConf(next + "bogus: 1\n")
	skip = epp.LogSize()
	epp.Signal(t, syscall.SIGHUP)
	epp.WaitLog(t, skip, 10*time.Second, `1 main: .*bogus`, `1 log: reload failed, level kept`)
	for _, r := range []entryRoute{downA, added} {
		if err := routeSession(t, r); err != nil {
			t.Errorf("%s after a refused reload: %v", r.name, err)
		}
	}
	if err := routeSession(t, upA); err == nil {
		t.Error("an upcall reached the removed gateway service after a refused reload")
	}

	// A change that needs a restart: refused whole.
	restart := strings.Replace(next, "file: events.jsonl", "file: events-2.jsonl", 1)
	if restart == next {
		t.Fatalf("no events file in %s:\n%s", epp.Conf, next)
	}
	writeConf(strings.Replace(restart, "shutdown_grace: 1s", "shutdown_grace: 2s", 1))
	skip = epp.LogSize()
	epp.Signal(t, syscall.SIGHUP)
	epp.WaitLog(t, skip, 10*time.Second, `1 config: reload refused: events needs a restart`, `1 log: reload failed, level kept`)
	if strings.Contains(epp.LogSince(skip), "shutdown_grace") {
		t.Errorf("a refused reload applied a change:\n%s", epp.LogSince(skip))
	}
	if err := routeSession(t, added); err != nil {
		t.Errorf("%s after a refused reload: %v", added.name, err)
	}
	e2etest.CheckNoCloseWait(t, 10*time.Second, c.Procs()...)
}
