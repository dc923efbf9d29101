package mux_test

import (
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// A reconnect storm, in one process: a node with many children (here the
// root, the node every leaf dials) stops and starts again on the same
// address, and its children, real leaf nodes with their own reconnect
// loops, all dial it again. What it shows: the first reconnect of each
// leaf is spread (Tuning.ReconnectSpread), and the node admits them at its
// handshake rate (Tuning.MaxHandshakeRate) with at most MaxHellos in their
// handshake at once, so that the storm cannot starve it.
//
// TestReconnectStorm runs 200 leaves and asserts what must hold;
// BenchmarkReconnectStorm runs 2,000, with and without the limits, and
// reports the figures of docs/PERFORMANCE.md:
//
//	go test -run '^$' -bench ReconnectStorm -benchtime 1x ./mux/
//
// The leaves all dial from 127.0.0.1: the node's cap per source address
// is raised to their number, as if each had its own address as sites do.
// Each leaf is a whole node (its dial loop, its link's goroutines), about
// 17 goroutines per leaf with both ends: not under -race at 2,000.

// stormFigures is what one run measured, from the node's start again.
type stormFigures struct {
	back    time.Duration // every leaf's link up again
	peak    int           // most link connections in their handshake at once
	busiest int           // most links that came up in one second
	cpu     time.Duration // the process's CPU time (the node and the leaves, both ends of every handshake) until all were back
	refused uint64        // connections closed at once over the hello caps
}

// stormTuning is the production tuning, with every leaf's source address
// counted as its own.
func stormTuning(leaves int) mux.Tuning {
	t := mux.DefaultTuning()
	t.MaxHellosPerSource = leaves
	return t
}

// runStorm starts a node with leaves children (each a leaf node dialling
// it), waits for every link, stops the node and starts it again on the
// same address with tun, and measures until every link is up again.
// leafTun is the leaves' tuning (their backoff and spread).
func runStorm(tb testing.TB, leaves int, tun, leafTun mux.Tuning, logLevel logrus.Level) stormFigures {
	tb.Helper()
	newLog := func() *logrus.Entry {
		lg := logrus.New()
		lg.SetOutput(io.Discard)
		lg.SetLevel(logLevel)
		return logrus.NewEntry(lg)
	}
	label := func(i int) string { return fmt.Sprintf("leaf-%04d", i) }
	cfg := mux.Config{Label: "hub", Role: mux.RoleRoot, Tuning: tun}
	for i := 0; i < leaves; i++ {
		cfg.Links = append(cfg.Links, mux.LinkConfig{Peer: label(i), Listen: "127.0.0.1:0"})
	}
	cfg = muxtest.WithTLS(tb, cfg)
	var stopHub func()
	hub := muxtest.StartNode(tb, cfg, muxtest.WithLog(newLog()), muxtest.WithStop(&stopHub))
	addr := hub.LinkAddr(label(0)).String()
	cfg.Links = append([]mux.LinkConfig(nil), cfg.Links...)
	for i := range cfg.Links {
		cfg.Links[i].Listen = addr
	}
	for i := 0; i < leaves; i++ {
		muxtest.StartNode(tb, mux.Config{Label: label(i), Role: mux.RoleLeaf, Tuning: leafTun,
			Links: []mux.LinkConfig{{Peer: "hub", Parent: true, Dial: addr}}}, muxtest.WithLog(newLog()))
	}
	muxtest.WaitFor(tb, 180*time.Second, "every leaf linked", func() bool { return len(hub.Links()) == leaves })

	stopHub()
	started, cpu0 := time.Now(), cpuTime()
	hub = muxtest.StartNode(tb, cfg, muxtest.WithLog(newLog()))
	var f stormFigures
	muxtest.WaitFor(tb, 180*time.Second, "every leaf linked again", func() bool { return len(hub.Links()) == leaves })
	f.back = time.Since(started)
	f.cpu = cpuTime() - cpu0
	f.peak = hub.HelloPeak()
	f.refused = hub.Stats().RefusedConnections
	perSecond := map[int64]int{}
	for _, ls := range hub.Status().Links {
		if !ls.Up {
			tb.Fatalf("the link to %s is down", ls.Peer)
		}
		s := int64(ls.Since.Sub(started) / time.Second)
		perSecond[s]++
		f.busiest = max(f.busiest, perSecond[s])
	}
	return f
}

func (f stormFigures) String() string {
	return fmt.Sprintf("all back in %v, at most %d handshakes in progress, at most %d links up in one second, CPU %v, %d refused over the hello caps",
		f.back.Round(time.Millisecond), f.peak, f.busiest, f.cpu.Round(time.Millisecond), f.refused)
}

// TestReconnectStorm: 200 leaves come back to a node that restarted. Every
// one comes back; at no time are more than max_hellos in their handshake;
// the node admits them no faster than its handshake rate (here 50 a
// second after a burst of 10, so the last cannot be in before 3.8s); and
// their first reconnects are spread, not all in one second.
func TestReconnectStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("200 leaf nodes: not under -short")
	}
	checkReleased(t)
	const leaves = 200
	tun := stormTuning(leaves)
	tun.MaxHandshakeRate, tun.HandshakeBurst = 50, 10
	tun.MaxHellos = 16
	leafTun := mux.DefaultTuning()
	f := runStorm(t, leaves, tun, leafTun, logrus.PanicLevel)
	t.Log(f)
	if f.peak > tun.MaxHellos {
		t.Errorf("%d handshakes in progress at once, over max_hellos %d", f.peak, tun.MaxHellos)
	}
	if least := time.Duration(float64(leaves-tun.HandshakeBurst) / tun.MaxHandshakeRate * float64(time.Second)); f.back < least {
		t.Errorf("all %d leaves were back in %v: faster than the handshake rate allows (%v)", leaves, f.back, least)
	}
	if f.busiest == leaves {
		t.Errorf("all %d leaves came back in the same second", leaves)
	}
}

// BenchmarkReconnectStorm: 2,000 leaves come back to a node that
// restarted, with the production defaults (first reconnects spread over
// 2s, 200 handshakes a second after a burst of 64, 64 in progress at
// most), with the rate limit off, and with neither the spread nor the
// rate limit. Metrics: ms-back (the node started again -> every link up),
// peak-hellos, busiest-s (most links up in one second), ms-cpu (the
// process: the node and every leaf), refused (closed at once over the
// hello caps, each a leaf backing off).
func BenchmarkReconnectStorm(b *testing.B) {
	const leaves = 2000
	off := func(t mux.Tuning) mux.Tuning {
		t.MaxHandshakeRate, t.HandshakeBurst = 1e9, 1<<30
		return t
	}
	for _, bc := range []struct {
		name      string
		tun, leaf mux.Tuning
	}{
		{"defaults", stormTuning(leaves), mux.DefaultTuning()},
		{"rate=off", off(stormTuning(leaves)), mux.DefaultTuning()},
		{"rate=off/spread=off", off(stormTuning(leaves)), func() mux.Tuning {
			t := mux.DefaultTuning()
			t.ReconnectSpread = time.Nanosecond
			return t
		}()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var sum stormFigures
			for i := 0; i < b.N; i++ {
				f := runStorm(b, leaves, bc.tun, bc.leaf, logrus.PanicLevel)
				b.Log(f)
				sum.back += f.back
				sum.cpu += f.cpu
				sum.peak = max(sum.peak, f.peak)
				sum.busiest = max(sum.busiest, f.busiest)
				sum.refused += f.refused
			}
			n := float64(b.N)
			b.ReportMetric(float64(sum.back.Milliseconds())/n, "ms-back")
			b.ReportMetric(float64(sum.cpu.Milliseconds())/n, "ms-cpu")
			b.ReportMetric(float64(sum.peak), "peak-hellos")
			b.ReportMetric(float64(sum.busiest), "busiest-s")
			b.ReportMetric(float64(sum.refused)/n, "refused")
		})
	}
}
