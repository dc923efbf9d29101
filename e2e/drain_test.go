package e2e

import (
	"fmt"
	"os"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/relaychain/relaychain/e2e/e2etest"
)

// TestSIGTERMDrains sends SIGTERM to a node while sessions through it are
// in flight, half-way through their upload: the node stops taking new
// work, the sessions complete with every byte (checked by SHA-256 both
// ways) within shutdown_grace, and the process exits 0 without having to
// abort anything. Both a relay (in the middle) and a gwproxy (the entry of
// an upcall and the exit of a downcall) are drained.
func TestSIGTERMDrains(t *testing.T) {
	const grace = 5 * time.Second // shutdown_grace of configs/example
	for _, victim := range []string{"relay-dmz2", "gwp-site-a"} {
		t.Run(victim, func(t *testing.T) {
			tg := startTargets(t)
			c := startChain(t, tg)
			// An upcall and a downcall through site A, paused mid-upload.
			routes := entryRoutes(c, tg)
			var sessions []*struct {
				r  entryRoute
				p  plan
				cs *clientSession
			}
			for _, r := range []entryRoute{routes[0], routes[2]} {
				p := plan{up: 8 << 20, down: 8 << 20, gate: &gate{at: 4 << 20, open: make(chan struct{})}}
				sessions = append(sessions, &struct {
					r  entryRoute
					p  plan
					cs *clientSession
				}{r, p, startSession(t, r.entry, p)})
			}
			for _, s := range sessions {
				ts := s.r.tg.session(s.cs.id)
				e2etest.Eventually(t, 20*time.Second, s.r.name+": half the upload arrived", func() error {
					if n := ts.pr.recv.Load(); n < 4<<20 {
						return fmt.Errorf("the target has %d bytes", n)
					}
					return nil
				})
			}

			p := c.Proc(victim)
			skip := p.LogSize()
			termAt := time.Now()
			p.Signal(t, syscall.SIGTERM)
			p.WaitLog(t, skip, 10*time.Second, `main: shutting down: draining 2 sessions`)
			if p.Exited() {
				t.Fatalf("%s exited with sessions in flight: %v", victim, p.Err())
			}
			for _, s := range sessions {
				close(s.p.gate.open)
			}
			for _, s := range sessions {
				cl := s.cs.wait(t, 30*time.Second)
				res := s.r.tg.result(t, s.cs.id, 30*time.Second)
				if err := checkClean(cl, res, s.p); err != nil {
					t.Errorf("%s: %v", s.r.name, err)
				}
			}
			if err := p.Wait(t, grace+5*time.Second); err != nil {
				t.Errorf("%s: want exit status 0, got %v; output:\n%s", victim, err, e2etest.FileText(p.Out))
			}
			if took := p.ExitedAt().Sub(termAt); took > grace {
				t.Errorf("%s exited %s after SIGTERM, beyond shutdown_grace %s", victim, took.Round(time.Millisecond), grace)
			}
			b, _ := os.ReadFile(p.Log)
			if regexp.MustCompile(`aborting \d+ sessions|session: aborted`).Match(b[skip:]) {
				t.Errorf("%s aborted sessions while draining:\n%s", victim, e2etest.LastLines(b, 30))
			}
			if !regexp.MustCompile(`(?m)main: stopped$`).Match(b[skip:]) {
				t.Errorf("%s: no \"main: stopped\" in its log:\n%s", victim, e2etest.LastLines(b, 30))
			}
		})
	}
}
