package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaychain/relaychain/e2e/e2etest"
)

// abortBound is how long a session may take to end at both ends after a
// node on its path dies: a cut link is noticed within keepalive_interval +
// write_timeout; the slack covers scheduling on a loaded 2-core machine.
const abortBound = e2etest.FastKeepalive + e2etest.FastWriteTimeout + 3*time.Second

// TestKillRelay kills a relay with SIGKILL (relay-dmz2, then, in a chain of
// its own, relay-dmz1; every session of the example crosses both) while
// sessions stream both ways and others sit idle, and checks that each of them ends with an abort (an RST, never a
// clean EOF) at the client of the entry and at the target, within
// abortBound. Then it starts the relay again from the same configuration:
// new sessions work without restarting anything else, and no daemon keeps
// a CLOSE_WAIT socket or a descriptor more than before.
func TestKillRelay(t *testing.T) {
	for _, victim := range []string{"relay-dmz2", "relay-dmz1"} {
		t.Run(victim, func(t *testing.T) { testFault(t, victim, false) })
	}
}

// TestFreezeRelay stops relay-dmz2 with SIGSTOP: its sockets stay open and
// its kernel keeps acknowledging, but nothing answers on its links any
// more, the way a link cut without a FIN looks. Every session through it
// must end with an abort at both ends within keepalive_interval +
// write_timeout (and slack). After SIGCONT the relay finds its links gone,
// the chain forms again without a restart, and no daemon, the frozen one
// included, keeps a CLOSE_WAIT socket or a descriptor more than before.
func TestFreezeRelay(t *testing.T) {
	testFault(t, "relay-dmz2", true)
}

// testFault kills (or, with freeze, stops) victim mid-transfer and checks
// the sessions through it, the recovery and the descriptors.
func testFault(t *testing.T, victim string, freeze bool) {
	tg := startTargets(t)
	c := startChain(t, tg)
	var survivors []*e2etest.Process
	for _, p := range c.Procs() {
		if p.Name != victim || freeze {
			survivors = append(survivors, p)
		}
	}
	base := e2etest.FDBaseline(t, survivors...)
	routes := entryRoutes(c, tg)

	type live struct {
		r    entryRoute
		cs   *clientSession
		idle bool
	}
	var sessions []live
	for _, r := range routes {
		// Two streaming sessions and one idle one per entry.
		for range 2 {
			sessions = append(sessions, live{r: r, cs: startSession(t, r.entry, plan{up: infinite, down: infinite})})
		}
		sessions = append(sessions, live{r: r, cs: startSession(t, r.entry, plan{hold: true}), idle: true})
	}
	// Every session is established end to end, and the streaming ones
	// are mid-transfer both ways.
	for _, s := range sessions {
		if s.cs.err != nil {
			t.Fatalf("%s: %v", s.r.name, s.cs.err)
		}
		ts := s.r.tg.session(s.cs.id)
		select {
		case <-ts.started:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: session %d never reached the target", s.r.name, s.cs.id)
		}
		if s.idle {
			continue
		}
		e2etest.Eventually(t, 20*time.Second, s.r.name+": bytes flowing both ways", func() error {
			if a, b := s.cs.pr.recv.Load(), ts.pr.recv.Load(); a < 1<<20 || b < 1<<20 {
				return fmt.Errorf("client received %d bytes (sent %d), target received %d (sent %d)", a, s.cs.pr.sent.Load(), b, ts.pr.sent.Load())
			}
			return nil
		})
	}

	p := c.Proc(victim)
	killedAt := time.Now()
	if freeze {
		p.Signal(t, syscall.SIGSTOP)
		t.Cleanup(func() { _ = syscall.Kill(p.Pid(), syscall.SIGCONT) })
	} else {
		p.Signal(t, syscall.SIGKILL)
		if err := p.Wait(t, 5*time.Second); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("%s: want killed, got %v", victim, err)
		}
	}

	var slowest time.Duration
	for _, s := range sessions {
		kind := "streaming"
		if s.idle {
			kind = "idle"
		}
		cl := s.cs.wait(t, abortBound+10*time.Second)
		res := s.r.tg.result(t, s.cs.id, abortBound+10*time.Second)
		for _, side := range []struct {
			who string
			r   *sideResult
		}{{"client", cl}, {"target", res}} {
			if side.r.end != endReset {
				t.Errorf("%s, %s session %d: the %s saw %s, want a reset (%v)", s.r.name, kind, s.cs.id, side.who, side.r.end, side.r)
			}
			took := side.r.endAt.Sub(killedAt)
			slowest = max(slowest, took)
			if took > abortBound {
				t.Errorf("%s, %s session %d: the %s saw the end %s after the fault, want at most %s", s.r.name, kind, s.cs.id, side.who, took.Round(time.Millisecond), abortBound)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d sessions aborted at both ends, the last %s after the fault (bound %s)", len(sessions), slowest.Round(time.Millisecond), abortBound)

	// The relay comes back (on the same ports, when restarted); the
	// others find it again.
	skip := c.Proc("epp-main").LogSize()
	if freeze {
		p.Signal(t, syscall.SIGCONT)
	} else {
		c.Start(victim)
	}
	waitFormed(t, c, skip)
	for _, r := range routes {
		// Each hop may learn the routes a little after the root does:
		// retry until a session goes through.
		pl := plan{up: 1 << 20, down: 1 << 20}
		e2etest.Eventually(t, 20*time.Second, r.name+" after "+victim+" came back", func() error {
			cs := startSession(t, r.entry, pl)
			<-cs.done
			if cs.err != nil {
				return cs.err
			}
			if cs.res.end != endClean {
				return fmt.Errorf("session %d: %v", cs.id, cs.res)
			}
			ts := r.tg.session(cs.id)
			select {
			case <-ts.done:
			case <-time.After(10 * time.Second):
				return fmt.Errorf("session %d: the target never finished", cs.id)
			}
			return checkClean(cs.res, ts.res, pl)
		})
	}
	e2etest.CheckNoLeaks(t, base, 15*time.Second)
	if !freeze {
		e2etest.CheckNoCloseWait(t, 15*time.Second, c.Proc(victim))
	}
}
