//go:build linux

package mux_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// The routing of a large tree, in one process: a root, relays below it,
// and below each relay leaves that announce their own label and endpoint
// labels (PROTOCOL.md section 3). The root and the relays are real nodes;
// the leaves are scripted peers (peer_test.go) over real TLS links, so
// that 2,000 of them fit in one process. Each relay reaches the root
// through a faultProxy that counts the bytes of the link.
//
// Each leaf dials from its own loopback address (127.1.x.y), as sites do
// from their own addresses, so a relay's hello cap per source address
// sees one leaf each; its cap per listen address (max_hellos, 64) turns
// away what is over it, and the leaf tries again after a backoff, as a
// real node does. Linux only: there every 127.x.y.z is a loopback address
// without configuration.
//
// TestConvergence runs a small tree and asserts what must hold;
// BenchmarkConverge runs the full size (20 relays, 2,000 leaves, 100,000
// endpoint labels) and reports the figures of docs/PERFORMANCE.md:
//
//	go test -run '^$' -bench Converge -benchtime 1x -count 3 ./mux/
//
// Not under -race: the race detector allows 8,128 goroutines, and 2,000
// links take several per end.

// simShape is the size of the simulated tree.
type simShape struct {
	relays, leaves, endpoints int // relays below the root, leaves per relay, endpoint labels per leaf
}

// perRelay is how many labels the root routes through one relay: the
// relay, its leaves and their endpoints.
func (s simShape) perRelay() int { return 1 + s.leaves*(1+s.endpoints) }

// routes is how many labels the root routes in all.
func (s simShape) routes() int { return s.relays * s.perRelay() }

// convergeFigures is what one run of the simulation measured.
type convergeFigures struct {
	linkUp  time.Duration // every leaf dialling -> every leaf linked (held) or announced (on-link)
	cold    time.Duration // the first leaf announcing -> the root routes every label
	tail    time.Duration // the last leaf announcing -> the root routes every label
	total   time.Duration // every leaf dialling -> the root routes every label
	cpu     time.Duration // the process's CPU time (all nodes and leaves) over cold (held) or total (on-link)
	retries int64         // leaf dials that failed (most turned away by a relay's hello cap) and were tried again

	drop        time.Duration // one relay stopped -> its labels gone from the root
	restart     time.Duration // that relay started again -> the root routes every label again
	restartTail time.Duration // the last of its leaves announcing again -> the same
	restartCPU  time.Duration // the process's CPU time over restart

	leafWire, leafCtl               int64 // bytes the leaves wrote at the cold start: on TCP, and in control messages
	relayUp, relayDown              int64 // bytes between the relays and the root at the cold start: up, down
	restartLeafWire, restartLeafCtl int64 // bytes the restarted relay's leaves wrote coming back: on TCP, in control messages
	restartUp                       int64 // bytes the restarted relay sent the root
	leafLabels                      int   // labels the leaves announced (their own and their endpoints)
	restartLabels                   int   // labels routed through the restarted relay
}

// sim is the simulated tree.
type sim struct {
	tb     testing.TB
	shape  simShape
	tun    mux.Tuning
	newLog func() *logrus.Entry

	root     *mux.Node
	stopRoot func()
	relays   []*simRelay
	leaves   []*simLeaf

	ctx     context.Context // ends the leaves' loops
	cancel  context.CancelFunc
	wg      sync.WaitGroup // the leaves' loops
	release chan struct{}  // closed: the leaves announce once linked
	linked  atomic.Int64   // leaf links up, announced or not
	retries atomic.Int64   // leaf dials that failed and were tried again

	// When leaves announced, in Unix nanoseconds: the first and the last
	// since reset.
	first, last atomic.Int64
	closeOnce   sync.Once
}

// simRelay is a relay of the simulation and what it takes to start it
// again on the same address.
type simRelay struct {
	label  string
	cfg    mux.Config
	node   *mux.Node
	stop   func()
	proxy  *faultProxy // between the relay and the root, counting
	addr   string      // where its leaves dial, kept across restarts
	leaves []*simLeaf
}

// simLeaf is a scripted leaf: it keeps a link to its relay up, announces
// its labels on each, and counts what it writes.
type simLeaf struct {
	label     string
	endpoints []string
	relay     *simRelay
	src       net.IP // its source address
	creds     *mux.TLSMaterial
	msgs      []byte // its announcement (WHO reply and deltas), encoded

	wire  atomic.Int64             // bytes written on its TCP connections, TLS included
	links atomic.Int64             // links established (each announced)
	path  atomic.Pointer[[]string] // its path to the root, as its relay last told it
}

// startSim starts the root and the relays, each linked to the root, and
// prepares the leaves (certificates, announcements) without starting them.
func startSim(tb testing.TB, shape simShape, newLog func() *logrus.Entry) *sim {
	tb.Helper()
	s := &sim{tb: tb, shape: shape, tun: loadTuning(), newLog: newLog, release: make(chan struct{})}
	// FastTuning's 2s hello timeout is too short for 2,000 handshakes at
	// once on two cores: the 20 relays' 1,280 handshakes in progress (64
	// each) share the CPU, many take longer than 2s, time out and are
	// tried again, and the links took 10 to 40s to come up, not 2 to 4.
	// The default, 10s, as in production.
	s.tun.HelloTimeout = mux.DefaultTuning().HelloTimeout
	s.ctx, s.cancel = context.WithCancel(context.Background())

	rootTun := s.tun
	rootTun.MaxRoutes = max(rootTun.MaxRoutes, 2*shape.routes())
	rootCfg := mux.Config{Label: "root", Role: mux.RoleRoot, Tuning: rootTun}
	for r := 0; r < shape.relays; r++ {
		rootCfg.Links = append(rootCfg.Links, mux.LinkConfig{Peer: simRelayLabel(r), Listen: "127.0.0.1:0"})
	}
	s.root = muxtest.StartNode(tb, rootCfg, muxtest.WithLog(newLog()), muxtest.WithStop(&s.stopRoot))
	rootAddr := s.root.LinkAddr(simRelayLabel(0)).String()

	echo := map[string]mux.Service{"echo": {Handler: echoHandler}}
	for r := 0; r < shape.relays; r++ {
		rl := &simRelay{label: simRelayLabel(r)}
		rl.proxy = startProxyFrom(tb, rootAddr, net.IPv4(127, 2, 0, byte(r+1)))
		rl.cfg = mux.Config{Label: rl.label, Role: mux.RoleRelay, Tuning: s.tun, Services: echo,
			Links: []mux.LinkConfig{{Peer: "root", Parent: true, Dial: rl.proxy.addr()}}}
		for i := 0; i < shape.leaves; i++ {
			g := r*shape.leaves + i
			lf := &simLeaf{label: fmt.Sprintf("gw-%02d-%03d", r, i), relay: rl, src: net.IPv4(127, 1, byte(g/250), byte(g%250+1))}
			for e := 0; e < shape.endpoints; e++ {
				lf.endpoints = append(lf.endpoints, fmt.Sprintf("ep-%02d-%03d-%02d", r, i, e))
			}
			for _, m := range announce(lf.label, lf.endpoints) {
				lf.msgs = append(lf.msgs, m.Encode()...)
			}
			lf.creds = muxtest.WithTLS(tb, mux.Config{Label: lf.label, Links: []mux.LinkConfig{{Peer: rl.label}}}).TLS.TLSMaterial()
			rl.leaves = append(rl.leaves, lf)
			s.leaves = append(s.leaves, lf)
			rl.cfg.Links = append(rl.cfg.Links, mux.LinkConfig{Peer: lf.label, Listen: "127.0.0.1:0"})
		}
		rl.node = muxtest.StartNode(tb, rl.cfg, muxtest.WithLog(newLog()), muxtest.WithStop(&rl.stop))
		// Started again, the relay listens where its leaves dial. (The
		// node keeps the links it was given: they are copied.)
		rl.addr = rl.node.LinkAddr(rl.leaves[0].label).String()
		rl.cfg.Links = append([]mux.LinkConfig(nil), rl.cfg.Links...)
		for i := range rl.cfg.Links[1:] {
			rl.cfg.Links[1+i].Listen = rl.addr
		}
		s.relays = append(s.relays, rl)
	}
	muxtest.WaitFor(tb, 30*time.Second, "the relays linked to the root", func() bool {
		for _, rl := range s.relays {
			if len(rl.node.PathToRoot()) != 1 {
				return false
			}
		}
		return s.root.RouteCount() == shape.relays
	})
	tb.Cleanup(s.close)
	return s
}

func simRelayLabel(r int) string { return fmt.Sprintf("relay-%02d", r) }

// close stops the leaves, then the relays and their proxies, then the
// root. Idempotent.
func (s *sim) close() {
	s.closeOnce.Do(func() {
		s.cancel()
		s.wg.Wait()
		for _, rl := range s.relays {
			rl.stop()
			rl.proxy.close()
		}
		s.stopRoot()
	})
}

// startLeaves starts every leaf's loop.
func (s *sim) startLeaves() {
	for _, lf := range s.leaves {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			lf.run(s)
		}()
	}
}

// noteAnnounce records that a leaf announces at now.
func (s *sim) noteAnnounce(now time.Time) {
	ns := now.UnixNano()
	s.first.CompareAndSwap(0, ns)
	for {
		l := s.last.Load()
		if ns <= l || s.last.CompareAndSwap(l, ns) {
			return
		}
	}
}

func (s *sim) resetAnnounces() {
	s.first.Store(0)
	s.last.Store(0)
}

// waitRoutes waits until the root routes want labels and returns when it
// first saw them.
func (s *sim) waitRoutes(what string, want int) time.Time {
	s.tb.Helper()
	var at time.Time
	muxtest.WaitFor(s.tb, 60*time.Second, what, func() bool {
		at = time.Now()
		return s.root.RouteCount() == want
	})
	return at
}

// checkRoutes asserts that the root routes every label of the tree, each
// through the relay it is below, and nothing else; and that each relay
// routes its leaves' labels through the leaf that announced them.
func (s *sim) checkRoutes() {
	s.tb.Helper()
	routes := s.root.Routes()
	if len(routes) != s.shape.routes() {
		s.tb.Fatalf("the root routes %d labels, want %d", len(routes), s.shape.routes())
	}
	for _, rl := range s.relays {
		below := rl.node.Routes()
		if len(below) != s.shape.perRelay()-1 {
			s.tb.Fatalf("%s routes %d labels, want %d", rl.label, len(below), s.shape.perRelay()-1)
		}
		if via := routes[rl.label]; via != rl.label {
			s.tb.Fatalf("the root routes %s via %q", rl.label, via)
		}
		for _, lf := range rl.leaves {
			for _, l := range append([]string{lf.label}, lf.endpoints...) {
				if via := routes[l]; via != rl.label {
					s.tb.Fatalf("the root routes %s via %q, want %s", l, via, rl.label)
				}
				if via := below[l]; via != lf.label {
					s.tb.Fatalf("%s routes %s via %q, want %s", rl.label, l, via, lf.label)
				}
			}
		}
	}
}

// waitPaths waits until every leaf was told its path to the root: its
// relay, then the root.
func (s *sim) waitPaths() {
	s.tb.Helper()
	muxtest.WaitFor(s.tb, 30*time.Second, "every leaf told its path to the root", func() bool {
		for _, lf := range s.leaves {
			p := lf.path.Load()
			if p == nil || strings.Join(*p, ",") != lf.relay.label+",root" {
				return false
			}
		}
		return true
	})
}

// run keeps the leaf's link up until the simulation ends: it links,
// announces, waits for the link to end, and links again after a backoff.
func (lf *simLeaf) run(s *sim) {
	b := mux.Backoff{Min: s.tun.BackoffMin, Max: s.tun.BackoffMax}
	for s.ctx.Err() == nil {
		sess, done, err := lf.link(s)
		if err != nil {
			s.retries.Add(1)
			if !mux.SleepCtx(s.ctx, b.Next()) {
				return
			}
			continue
		}
		b.Reset()
		select {
		case <-sess.CloseChan():
		case <-s.ctx.Done():
		}
		_ = sess.Close()
		<-done
	}
}

// link runs the handshake, takes the control stream the relay opens and
// announces on it. done is closed when the reader of the relay's control
// messages has ended, after the session closed.
func (lf *simLeaf) link(s *sim) (sess *yamux.Session, done chan struct{}, err error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: lf.src}, Timeout: 5 * time.Second}
	raw, err := d.DialContext(s.ctx, "tcp", lf.relay.addr)
	if err != nil {
		return nil, nil, err
	}
	if sess, err = scriptedLink(countingConn{raw, &lf.wire}, lf.label, lf.creds, mux.RoleLeaf, false); err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	st, err := sess.AcceptStreamWithContext(ctx)
	cancel()
	if err != nil {
		_ = sess.Close()
		return nil, nil, err
	}
	var typ [1]byte
	_ = st.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(st, typ[:]); err != nil || typ[0] != 'C' {
		_ = sess.Close()
		return nil, nil, fmt.Errorf("control stream type %q: %v", typ, err)
	}
	_ = st.SetReadDeadline(time.Time{})
	s.linked.Add(1)
	select {
	case <-s.release:
	case <-sess.CloseChan():
		s.linked.Add(-1)
		return nil, nil, errors.New("link closed before the announcement")
	case <-s.ctx.Done():
		_ = sess.Close()
		return nil, nil, s.ctx.Err()
	}
	s.noteAnnounce(time.Now())
	if _, err := st.Write(lf.msgs); err != nil {
		_ = sess.Close()
		return nil, nil, err
	}
	lf.links.Add(1)
	done = make(chan struct{})
	go func() {
		defer close(done)
		lf.readControl(st)
	}()
	return sess, done, nil
}

// readControl reads what the relay sends on the control stream until it
// ends: it keeps the path of each TELL reply, and answers a WHO after the
// first (a resync) with the whole announcement again.
func (lf *simLeaf) readControl(st net.Conn) {
	whos := 0
	for {
		m, err := mux.ReadCtrl(st)
		if err != nil {
			return
		}
		switch m.Type {
		case mux.CtrlTellReply:
			path := m.Labels
			lf.path.Store(&path)
		case mux.CtrlWho:
			if whos++; whos > 1 {
				if _, err := st.Write(lf.msgs); err != nil {
					return
				}
			}
		}
	}
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// countingConn counts the bytes written to a connection.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// runConvergence runs the simulation of shape: the cold start, then one
// relay stopped and started again. At the cold start every leaf dials its
// relay at once; it announces as soon as its link is up, or, when held,
// once every leaf's link is up, so that the routing is measured apart
// from the handshakes. After the restart the leaves announce as soon as
// their link is up. It asserts the routes at each step and that sessions
// go through, and returns the figures.
func runConvergence(tb testing.TB, shape simShape, held bool, newLog func() *logrus.Entry) convergeFigures {
	tb.Helper()
	s := startSim(tb, shape, newLog)
	var f convergeFigures
	f.leafLabels = len(s.leaves) * (1 + shape.endpoints)

	up0, down0 := s.proxyBytes()
	started := time.Now()
	if !held {
		close(s.release)
	}
	s.startLeaves()
	cpu0 := cpuTime()
	if held {
		muxtest.WaitFor(tb, 120*time.Second, "every leaf linked", func() bool { return s.linked.Load() == int64(len(s.leaves)) })
		f.linkUp = time.Since(started)
		cpu0 = cpuTime()
		close(s.release)
	}
	conv := s.waitRoutes("the root to route every label", shape.routes())
	f.cpu = cpuTime() - cpu0
	f.cold = conv.Sub(time.Unix(0, s.first.Load()))
	if !held {
		f.linkUp = time.Unix(0, s.last.Load()).Sub(started)
	}
	f.tail = conv.Sub(time.Unix(0, s.last.Load()))
	f.total = conv.Sub(started)
	f.retries = s.retries.Load()
	up1, down1 := s.proxyBytes()
	f.relayUp, f.relayDown = up1-up0, down1-down0
	for _, lf := range s.leaves {
		f.leafWire += lf.wire.Load()
		f.leafCtl += int64(len(lf.msgs))
	}
	s.checkRoutes()
	s.waitPaths()

	// One relay stops: its leaves lose their link and dial again until it
	// is back on the same address.
	rl := s.relays[len(s.relays)/2]
	f.restartLabels = shape.perRelay()
	stopped := time.Now()
	rl.stop()
	f.drop = s.waitRoutes("the stopped relay's labels gone from the root", shape.routes()-shape.perRelay()).Sub(stopped)
	if via, ok := s.root.Routes()[rl.leaves[0].endpoints[0]]; ok {
		tb.Fatalf("the root still routes %s via %s", rl.leaves[0].endpoints[0], via)
	}
	wire0 := int64(0)
	for _, lf := range rl.leaves {
		wire0 += lf.wire.Load()
		f.restartLeafCtl += int64(len(lf.msgs))
	}
	relayUp0 := rl.proxy.up.Load()
	s.resetAnnounces()
	restarted, cpu0 := time.Now(), cpuTime()
	rl.node = muxtest.StartNode(tb, rl.cfg, muxtest.WithLog(newLog()), muxtest.WithStop(&rl.stop))
	conv = s.waitRoutes("the root to route every label again", shape.routes())
	f.restart = conv.Sub(restarted)
	f.restartCPU = cpuTime() - cpu0
	f.restartTail = conv.Sub(time.Unix(0, s.last.Load()))
	for _, lf := range rl.leaves {
		f.restartLeafWire += lf.wire.Load()
	}
	f.restartLeafWire -= wire0
	f.restartUp = rl.proxy.up.Load() - relayUp0
	s.checkRoutes()
	s.waitPaths()
	for _, lf := range s.leaves {
		want := int64(1)
		if lf.relay == rl {
			want = 2
		}
		if n := lf.links.Load(); n != want {
			tb.Fatalf("%s linked %d times, want %d: a link that was not cut went down", lf.label, n, want)
		}
	}

	// Sessions go through the restarted relay and another.
	echoThrough(tb, s.root, rl.label)
	echoThrough(tb, s.root, s.relays[0].label)
	s.close()
	return f
}

// proxyBytes sums what the proxies between the relays and the root
// forwarded, up and down.
func (s *sim) proxyBytes() (up, down int64) {
	for _, rl := range s.relays {
		up += rl.proxy.up.Load()
		down += rl.proxy.down.Load()
	}
	return up, down
}

// log writes the figures to tb's log.
func (f convergeFigures) log(tb testing.TB, shape simShape) {
	tb.Helper()
	tb.Logf("%d relays x %d leaves x %d endpoints: %d routes at the root", shape.relays, shape.leaves, shape.endpoints, shape.routes())
	tb.Logf("cold start: %v from the first leaf announcing to every route at the root, %v after the last; %v from the first dial, links up in %v (%d dials turned away and tried again); CPU %v",
		f.cold.Round(time.Millisecond), f.tail.Round(time.Millisecond), f.total.Round(time.Millisecond), f.linkUp.Round(time.Millisecond), f.retries, f.cpu.Round(time.Millisecond))
	tb.Logf("relay restart: its routes gone from the root %v after the stop, all back %v after the start (%v after its last leaf announced); CPU %v", f.drop.Round(time.Millisecond), f.restart.Round(time.Millisecond), f.restartTail.Round(time.Millisecond), f.restartCPU.Round(time.Millisecond))
	tb.Logf("control bytes at the cold start: leaves wrote %d on TCP (%.1f per label announced; %.1f in control messages), relays sent the root %.1f per route (%d in all, %d back)",
		f.leafWire, float64(f.leafWire)/float64(f.leafLabels), float64(f.leafCtl)/float64(f.leafLabels),
		float64(f.relayUp)/float64(shape.routes()), f.relayUp, f.relayDown)
	tb.Logf("control bytes at the restart: the relay's leaves wrote %d on TCP (%d in control messages), the relay sent the root %.1f per route (%d)",
		f.restartLeafWire, f.restartLeafCtl, float64(f.restartUp)/float64(f.restartLabels), f.restartUp)
}

// TestConvergence: a root, 4 relays, 50 scripted leaves below each with
// 20 endpoint labels (4,204 routes at the root). After the cold start the
// root routes every label through the relay it is below and each leaf
// knows its path; after one relay is stopped its labels leave the root,
// and when it starts again on the same address its leaves come back and
// the root routes everything again, no other leaf's link having moved;
// sessions go through. The full size is BenchmarkConverge.
func TestConvergence(t *testing.T) {
	if testing.Short() {
		t.Skip("a tree of 200 links: not under -short")
	}
	checkReleased(t)
	shape := simShape{relays: 4, leaves: 50, endpoints: 20}
	f := runConvergence(t, shape, false, func() *logrus.Entry { return muxtest.Log(t) })
	f.log(t, shape)
}

// BenchmarkConverge: the full size, 20 relays x 100 scripted leaves x 50
// endpoint labels (102,020 routes at the root). One op is a whole run of
// runConvergence: the cold start, then one relay restarted. The cold start
// is held (every leaf links, then all announce at once: the routing
// alone) or on-link (each leaf announces as soon as its link is up, the
// handshakes of the others meanwhile). The nodes log at level 0 (off) or
// at level 3 (info, the daemons' default, formatted as text into
// io.Discard). Metrics:
//   - ms-links: every leaf dialling -> every leaf linked (held) or
//     announced (on-link); retries: the dials that failed (most turned
//     away by a relay's hello cap) and were tried again;
//   - ms-cold: the first leaf announcing -> the root routes every label;
//     ms-tail: the last leaf announcing -> the same; ms-total: every leaf
//     dialling -> the same;
//   - ms-cpu: the CPU time of the process (root, relays and leaves) over
//     ms-cold (held) or ms-total (on-link), which the other programs on
//     the machine do not stretch as they do the elapsed time;
//   - ms-restart: the relay started again -> the root routes every label;
//     ms-restart-tail: its last leaf announcing again -> the same;
//     ms-restart-cpu: the CPU time of the process over ms-restart;
//   - leaf-B/label: what the leaves wrote on TCP (TLS, hello, yamux and
//     control) per label they announced; ctl-B/label: the control messages
//     alone;
//   - relay-B/route: what the relays sent the root (on TCP, at the proxy)
//     per route at the root, at the cold start; restart-B/route: the same
//     for the restarted relay.
func BenchmarkConverge(b *testing.B) {
	shape := simShape{relays: 20, leaves: 100, endpoints: 50}
	for _, bc := range []struct {
		name  string
		held  bool
		level logrus.Level
	}{
		{"cold=held/log=0", true, logrus.PanicLevel},
		{"cold=held/log=3", true, logrus.InfoLevel},
		{"cold=on-link/log=0", false, logrus.PanicLevel},
	} {
		b.Run(bc.name, func(b *testing.B) {
			newLog := func() *logrus.Entry {
				lg := logrus.New()
				lg.SetOutput(io.Discard)
				lg.SetLevel(bc.level)
				return logrus.NewEntry(lg)
			}
			var sum convergeFigures
			for i := 0; i < b.N; i++ {
				f := runConvergence(b, shape, bc.held, newLog)
				f.log(b, shape)
				sum.linkUp += f.linkUp
				sum.cold += f.cold
				sum.total += f.total
				sum.retries += f.retries
				sum.cpu += f.cpu
				sum.restartCPU += f.restartCPU
				sum.tail += f.tail
				sum.restart += f.restart
				sum.restartTail += f.restartTail
				sum.leafWire += f.leafWire
				sum.leafCtl += f.leafCtl
				sum.relayUp += f.relayUp
				sum.restartUp += f.restartUp
				sum.leafLabels += f.leafLabels
				sum.restartLabels += f.restartLabels
			}
			n := float64(b.N)
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / n }
			b.ReportMetric(ms(sum.linkUp), "ms-links")
			b.ReportMetric(ms(sum.cold), "ms-cold")
			b.ReportMetric(ms(sum.tail), "ms-tail")
			b.ReportMetric(ms(sum.total), "ms-total")
			b.ReportMetric(ms(sum.cpu), "ms-cpu")
			b.ReportMetric(float64(sum.retries)/n, "retries")
			b.ReportMetric(ms(sum.restartCPU), "ms-restart-cpu")
			b.ReportMetric(ms(sum.restart), "ms-restart")
			b.ReportMetric(ms(sum.restartTail), "ms-restart-tail")
			b.ReportMetric(float64(sum.leafWire)/float64(sum.leafLabels), "leaf-B/label")
			b.ReportMetric(float64(sum.leafCtl)/float64(sum.leafLabels), "ctl-B/label")
			b.ReportMetric(float64(sum.relayUp)/(n*float64(shape.routes())), "relay-B/route")
			b.ReportMetric(float64(sum.restartUp)/float64(sum.restartLabels), "restart-B/route")
		})
	}
}
