package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/relaychain/relaychain/e2e/e2etest"
)

// prober runs short sessions through the chain's entries one after the
// other until stopped, and keeps when each started and how it ended.
type prober struct {
	routes []entryRoute
	stop   chan struct{}
	done   chan struct{}

	mu   sync.Mutex
	runs []probe
}

type probe struct {
	at    time.Time
	route string
	err   error
}

func startProber(t testing.TB, routes []entryRoute) *prober {
	pr := &prober{routes: routes, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(pr.done)
		for i := 0; ; i++ {
			select {
			case <-pr.stop:
				return
			default:
			}
			r := routes[i%len(routes)]
			at := time.Now()
			err := probeSession(t, r)
			pr.mu.Lock()
			pr.runs = append(pr.runs, probe{at: at, route: r.name, err: err})
			pr.mu.Unlock()
		}
	}()
	t.Cleanup(pr.halt)
	return pr
}

func (pr *prober) halt() {
	select {
	case <-pr.stop:
	default:
		close(pr.stop)
	}
	<-pr.done
}

// count is how many sessions started in [from, to) and how many of them
// failed, with the first failure.
func (pr *prober) count(from, to time.Time) (n, failed int, first error) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	for _, p := range pr.runs {
		if p.at.Before(from) || !p.at.Before(to) {
			continue
		}
		n++
		if p.err != nil {
			failed++
			if first == nil {
				first = fmt.Errorf("%s at %s: %w", p.route, p.at.Format("15:04:05.000"), p.err)
			}
		}
	}
	return n, failed, first
}

// probeSession runs one session of 64 KiB each way through r and checks
// every byte at both ends (SHA-256 both ways).
func probeSession(t testing.TB, r entryRoute) error {
	pl := plan{up: 64 << 10, down: 64 << 10}
	cs := startSession(t, r.entry, pl)
	select {
	case <-cs.done:
	case <-time.After(30 * time.Second):
		return fmt.Errorf("session %d: not done within 30s", cs.id)
	}
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
}

// TestRollingUpgrade upgrades a node with scripts/NAME.sh upgrade while an
// upcall and a downcall of 16 MiB each way are in flight through it: both
// complete with every byte (SHA-256 both ways); new sessions through the
// chain, up and down, to both sites, succeed before, during and after; the
// pid file names the new process, the only one left running the instance;
// and the old one exits 0 once its sessions ended, within shutdown_grace,
// without aborting any. The nodes: relay-dmz2 (its parent relay-dmz1 dials
// it, the two gwproxies below dial it), gwp-site-a (the entry of the
// upcall and the exit of the downcall; it dials its parent and its
// eventsink would dial it) and epp-main (the root: the exit of the upcall,
// the entry of the downcall; it dials relay-dmz1).
func TestRollingUpgrade(t *testing.T) {
	for _, n := range []e2etest.Node{{Name: "relay-dmz2", Daemon: "relay"}, {Name: "gwp-site-a", Daemon: "gwproxy"}, {Name: "epp-main", Daemon: "epproxy"}} {
		t.Run(n.Name, func(t *testing.T) { testRollingUpgrade(t, n) })
	}
}

func testRollingUpgrade(t *testing.T, node e2etest.Node) {
	const grace = 5 * time.Second // shutdown_grace of configs/example
	tg := startTargets(t)
	c := startChain(t, tg)
	routes := entryRoutes(c, tg)
	held := []*heldSession{startHeld(t, routes[0]), startHeld(t, routes[2])}
	upgradeNode(t, c, node, grace, held, routes)
}

// heldSession is a session of 16 MiB each way, paused half-way through
// its upload until finish.
type heldSession struct {
	r  entryRoute
	p  plan
	cs *clientSession
}

// startHeld starts a held session through r and waits until half its
// upload reached the target.
func startHeld(t testing.TB, r entryRoute) *heldSession {
	t.Helper()
	h := &heldSession{r: r, p: plan{up: 16 << 20, down: 16 << 20, gate: &gate{at: 8 << 20, open: make(chan struct{})}}}
	h.cs = startSession(t, r.entry, h.p)
	ts := r.tg.session(h.cs.id)
	e2etest.Eventually(t, 20*time.Second, r.name+": half the upload arrived", func() error {
		if n := ts.pr.recv.Load(); n < 8<<20 {
			return fmt.Errorf("the target has %d bytes", n)
		}
		return nil
	})
	return h
}

// finish lets the session go on and checks that it completes with every
// byte both ways.
func (h *heldSession) finish(t testing.TB) error {
	t.Helper()
	close(h.p.gate.open)
	cl := h.cs.wait(t, 60*time.Second)
	return checkClean(cl, h.r.tg.result(t, h.cs.id, 30*time.Second), h.p)
}

// upgradeNode upgrades node of c with scripts/NAME.sh upgrade while held
// sessions go through it and new sessions run on routes one after the
// other, and checks: the held sessions complete with every byte once the
// old process hands over; sessions on every route succeed before, during
// and after the upgrade; the pid file names the new process, the only one
// left running the instance; the old one exits 0 once its sessions ended,
// within grace (its shutdown_grace) of the upgrade, without aborting any.
// It returns the new process's pid.
func upgradeNode(t *testing.T, c *e2etest.Chain, node e2etest.Node, grace time.Duration, held []*heldSession, routes []entryRoute) int {
	t.Helper()
	old := c.Proc(node.Name)
	dir := c.NodeDir(node.Name)
	in := newInstance(t, node.Daemon, dir)
	if err := os.WriteFile(filepath.Join(dir, node.Daemon+".pid"), []byte(strconv.Itoa(old.Pid())+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pr := startProber(t, routes)
	e2etest.Eventually(t, 30*time.Second, "sessions before the upgrade", func() error {
		if n, _, _ := pr.count(time.Time{}, time.Now()); n < len(routes) {
			return fmt.Errorf("%d sessions so far", n)
		}
		return nil
	})

	skip := old.LogSize()
	upgradeAt := time.Now()
	out := in.must("upgrade", 0)
	t.Logf("%s.sh upgrade: %s", node.Daemon, out)
	newPid := in.pid()
	if newPid == 0 || newPid == old.Pid() {
		t.Fatalf("after the upgrade the pid file names %d (the old process was %d)", newPid, old.Pid())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(e2etest.FileText(old.Log))
		}
	})
	old.WaitLog(t, skip, 20*time.Second, `main: handing over to the successor: draining \d+ sessions`)
	if old.Exited() {
		t.Fatalf("the old %s exited with sessions in flight: %v", node.Name, old.Err())
	}
	// The held sessions go on through the old process.
	for _, h := range held {
		if err := h.finish(t); err != nil {
			t.Errorf("%s: %v", h.r.name, err)
		}
	}
	if err := old.Wait(t, grace+10*time.Second); err != nil {
		t.Errorf("the old %s: want exit status 0, got %v; output:\n%s", node.Name, err, e2etest.FileText(old.Out))
	}
	exitAt := old.ExitedAt()
	if took := exitAt.Sub(upgradeAt); took > grace+5*time.Second {
		t.Errorf("the old %s exited %s after the upgrade, beyond shutdown_grace %s", node.Name, took.Round(time.Millisecond), grace)
	}

	// New sessions after the old process is gone, through the new one.
	e2etest.Eventually(t, 30*time.Second, "sessions after the old process exited", func() error {
		if n, _, _ := pr.count(exitAt, time.Now()); n < 2*len(routes) {
			return fmt.Errorf("%d sessions so far", n)
		}
		return nil
	})
	pr.halt()
	for _, span := range []struct {
		name     string
		from, to time.Time
	}{
		{"before the upgrade", time.Time{}, upgradeAt},
		{"during the upgrade", upgradeAt, exitAt},
		{"after the upgrade", exitAt, time.Now()},
	} {
		n, failed, first := pr.count(span.from, span.to)
		t.Logf("%s: %d sessions, %d failed", span.name, n, failed)
		if n == 0 {
			t.Errorf("no session %s", span.name)
		}
		if failed > 0 {
			t.Errorf("%d of %d sessions %s failed; the first: %v", failed, n, span.name, first)
		}
	}
	b, _ := os.ReadFile(old.Log)
	if regexp.MustCompile(`aborting \d+ sessions|session: aborted|handover: \d+ sessions left`).Match(b[skip:]) {
		t.Errorf("sessions were aborted during the upgrade:\n%s", e2etest.LastLines(b, 40))
	}
	if pid := in.running(); pid != newPid {
		t.Fatalf("the instance runs as pid %d, the pid file names %d", pid, newPid)
	}
	return newPid
}
