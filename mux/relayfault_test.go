package mux_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// faultTuning is muxtest.FastTuning with small windows, so that a session whose
// client does not read backs up quickly.
func faultTuning() mux.Tuning {
	t := muxtest.FastTuning()
	t.WindowSize = 256 << 10
	// A keepalive answer queues behind the firehose's data on its link;
	// on a loaded 2-core machine under -race that took more than
	// FastTuning's 1s, and the link died before the fault was made ("root
	// carries 0 sessions, want 3"). The bound below grows with it.
	t.WriteTimeout = 3 * time.Second
	return t
}

// faultBound is how long a dead link may take to be noticed and its
// sessions aborted: a keepalive interval and a write timeout (the bound
// that Tuning documents), plus slack for a loaded -race run.
func faultBound(tun mux.Tuning) time.Duration {
	return tun.KeepAliveInterval + tun.WriteTimeout + 3*time.Second
}

// faultSessions are the sessions a fault test breaks: one up and one down
// through the chain, moving bytes both ways, and one whose client does
// not read while its target sends as fast as it can, so that its entry is
// blocked writing to the client and its target is held by flow control.
type faultSessions struct {
	upClient, upTarget     *flow
	downClient, downTarget *flow
	frozenClient           *flow
	frozenTarget           *flow
}

// faultSetup is what startFaultSessions needs: targets and entries.
type faultSetup struct {
	flows, hoses           chan *flow
	srv, hose, duplex      *target
	upLn, downLn, frozenLn net.Listener
	services               map[string]mux.Service
	leafOpts, rootOpts     []muxtest.Option
}

func newFaultSetup(t testing.TB) *faultSetup {
	t.Helper()
	f := &faultSetup{}
	f.srv, f.flows = flowTarget(t, true)
	f.hose, f.hoses = flowTargetPace(t, true, true)
	f.duplex = startTarget(t, serveDuplex)
	f.upLn, f.downLn, f.frozenLn = listenEntry(t), listenEntry(t), listenEntry(t)
	f.services = map[string]mux.Service{
		"flow":     {Addrs: []string{f.srv.addr()}},
		"firehose": {Addrs: []string{f.hose.addr()}},
		"duplex":   {Addrs: []string{f.duplex.addr()}},
	}
	f.leafOpts = []muxtest.Option{muxtest.WithEntry(f.upLn, "up", "root", "flow")}
	f.rootOpts = []muxtest.Option{
		muxtest.WithEntry(f.downLn, "down", "leaf", "flow"),
		muxtest.WithEntry(f.frozenLn, "frozen", "leaf", "firehose"),
	}
	return f
}

func (f *faultSetup) start(t testing.TB, tc *tchain) *faultSessions {
	t.Helper()
	s := &faultSessions{}
	s.upClient = dialFlow(t, f.upLn.Addr().String(), true, true)
	s.upTarget = nextFlow(t, f.flows)
	s.downClient = dialFlow(t, f.downLn.Addr().String(), true, true)
	s.downTarget = nextFlow(t, f.flows)
	s.frozenClient = dialFlow(t, f.frozenLn.Addr().String(), false, false)
	s.frozenTarget = nextFlow(t, f.hoses)
	waitMoving(t, "fault sessions", s.upClient, s.upTarget, s.downClient, s.downTarget)
	waitStalled(t, s.frozenTarget)
	for _, n := range tc.nodes() {
		if got := n.Sessions(); got != 3 {
			t.Fatalf("%s carries %d sessions, want 3", n.Label(), got)
		}
	}
	return s
}

// waitClosed checks that the targets saw every connection closed.
func (f *faultSetup) waitClosed(t testing.TB, flows, hoses, duplex int64) {
	t.Helper()
	f.srv.waitClosed(t, flows)
	f.hose.waitClosed(t, hoses)
	f.duplex.waitClosed(t, duplex)
}

// assertAllReset checks that every end of every fault session saw a reset
// within d, and that every node released the sessions within d.
func (s *faultSessions) assertAllReset(t testing.TB, tc *tchain, d time.Duration) {
	t.Helper()
	start := time.Now()
	assertReset(t, s.upClient, d, "up session: entry client")
	assertReset(t, s.upTarget, d-time.Since(start), "up session: target")
	assertReset(t, s.downClient, d-time.Since(start), "down session: entry client")
	assertReset(t, s.downTarget, d-time.Since(start), "down session: target")
	assertReset(t, s.frozenTarget, d-time.Since(start), "frozen session: target")
	for {
		left := ""
		for _, n := range tc.nodes() {
			if got := n.Sessions(); got != 0 {
				left += fmt.Sprintf(" %s:%d", n.Label(), got)
			}
		}
		if left == "" {
			break
		}
		if time.Since(start) > d {
			t.Fatalf("sessions not released within %s:%s", d, left)
		}
		time.Sleep(5 * time.Millisecond)
	}
	drainReset(t, s.frozenClient, "frozen session: entry client")
}

// TestRelayLinksCut breaks both of relay1's links in the middle of
// transfers, by a cut (reset) or a blackhole (silence). Every session
// through relay1 ends with a reset at both ends within the keepalive
// bound, every node releases them, and no goroutine or socket is left.
// Then the links come back and new sessions work end to end.
func TestRelayLinksCut(t *testing.T) {
	for _, mode := range []string{"cut", "blackhole"} {
		t.Run(mode, func(t *testing.T) {
			checkReleased(t)
			fs := newFaultSetup(t)
			tc := startTestChain(t, tchainOpts{proxied: true, chainOpts: chainOpts{
				tuning:       faultTuning(),
				rootServices: fs.services,
				leafServices: fs.services,
				leafOpts:     fs.leafOpts,
				rootOpts:     fs.rootOpts,
			}})
			s := fs.start(t, tc)
			if mode == "cut" {
				tc.rootProxy.cut()
				tc.childProxy.cut()
			} else {
				tc.rootProxy.blackhole()
				tc.childProxy.blackhole()
			}
			s.assertAllReset(t, tc, faultBound(tc.tun))
			if mode == "blackhole" {
				tc.rootProxy.heal()
				tc.childProxy.heal()
			}
			tc.waitRoutes(t)
			sessionsWork(t, tc.chain, "duplex")
			assertDrained(t, tc.nodes()...)
			fs.waitClosed(t, 2, 1, 2)
		})
	}
}

// TestRelayKilledAndRestarted shuts relay1 down in the middle of transfers
// with a short grace: Shutdown reports the sessions it had to abort, every
// session through it ends with a reset at both ends, every node releases
// them. A new relay1 on the same address is taken back by its neighbours,
// the routes are learned again and new sessions work.
func TestRelayKilledAndRestarted(t *testing.T) {
	checkReleased(t)
	fs := newFaultSetup(t)
	tc := startTestChain(t, tchainOpts{chainOpts: chainOpts{
		tuning:       faultTuning(),
		r1Listen:     freeAddr(t),
		rootServices: fs.services,
		leafServices: fs.services,
		leafOpts:     fs.leafOpts,
		rootOpts:     fs.rootOpts,
	}})
	s := fs.start(t, tc)
	old := tc.r1
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := old.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shutdown with sessions left: %v, want the context's error", err)
	}
	if got := old.Sessions(); got != 0 {
		t.Fatalf("relay1 carries %d sessions after Shutdown", got)
	}
	s.assertAllReset(t, tc, faultBound(tc.tun))

	tc.r1 = tc.start(relay1Config(tc.tun, tc.r1Addr))
	tc.waitRoutes(t)
	sessionsWork(t, tc.chain, "duplex")
	assertDrained(t, tc.nodes()...)
	fs.waitClosed(t, 2, 1, 2)
}
