package eventse2e

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relaychain/relaychain/e2e/e2etest"
)

// TestEventsSurviveFaults sends 100,000 events from 20 senders (7 EIF and 7
// line senders over TCP, 6 syslog senders over UDP; 5,000 each) through
// the eventsink es-site-a, gwp-site-a, relay-dmz2 and relay-dmz1 to
// epp-main and the event server, while, in turn:
//
//  1. the event server is down for a while (the senders go on; the
//     events wait in the spool);
//  2. relay-dmz1 is killed with SIGKILL and restarted;
//  3. the eventsink is killed with SIGKILL and restarted while it
//     forwards a backlog (the event server is held down while the
//     phase's events are sent, so that they pile up in the spool; it
//     comes back just before the kill);
//  4. the epproxy is stopped with SIGTERM and started again;
//  5. the epproxy is killed with SIGKILL and restarted.
//
// The senders move on phase by phase (fleet.setLimit); faults 2, 4 and 5
// strike while they send. At the end, the event server must have every
// event of every TCP sender exactly once and in order, and every UDP
// datagram the eventsink received, in order and exactly once; the only
// repeats allowed are those of the batch the epproxy had in flight when it
// was killed (at most batchEvents events, delivered again right after its
// restart). Lost and repeated events are reported separately.
//
// What "sent" means around the eventsink's kill -9: the eventsink
// acknowledges nothing to its TCP senders, so an event written just before
// the kill may still be in the kernel's buffers of the killed process and
// be lost with it, and no sender could know. The test therefore holds the
// senders still before the kill (every sender has written everything up to
// the phase's limit), waits until each sender's last event is in the spool
// files (read from disk, read-only) or already at the event server, and
// for UDP until the socket's receive queue is empty, and only then kills
// the eventsink: every event the senders wrote was taken (spooled) by the
// eventsink, and all of them must arrive. After the restart, the TCP
// senders connect again and go on.
//
// UDP datagrams are sent only while the eventsink runs; the kernel's count
// of datagrams dropped at its socket (/proc/net/udp, read before each stop
// of the eventsink) bounds the UDP events that may be missing.
//
// The event server is taken down only once every event sent so far has
// reached it: an event server that closes its connection with bytes unread
// loses them, and the plain event server protocol has no acknowledgement
// that would let the epproxy know.
func TestEventsSurviveFaults(t *testing.T) {
	perSender := 5000 // 20 senders: 100,000 events
	c := newChain(t, chainOpts{})
	srv := startEventServer(t, c.Addr(e2etest.PortEvents))
	start := time.Now()
	c.StartAll()
	spoolDir := filepath.Join(c.NodeDir("es-site-a"), "spool")
	udpPort := c.Port(e2etest.PortSyslogUDP)
	e2etest.WaitListening(t, c.Addr(e2etest.PortLinesTCP), 10*time.Second)
	fl := startFleet(t, perSender, c.Addr(e2etest.PortEIF), c.Addr(e2etest.PortLinesTCP), c.Addr(e2etest.PortSyslogUDP))

	step := func(format string, args ...any) {
		t.Logf("%6.2fs %-60s sent %6d, at the event server %6d", time.Since(start).Seconds(),
			fmt.Sprintf(format, args...), fl.totalSent(), srv.received())
	}
	limit := func(pct int) int { return perSender * pct / 100 }
	// udpDropsGone counts the datagrams the kernel dropped at the sockets
	// of eventsink processes that are gone.
	udpDropsGone := 0
	udpDrops := func() int {
		t.Helper()
		_, d, err := e2etest.UDPSocket(udpPort)
		if err != nil {
			t.Fatalf("eventsink UDP socket: %v", err)
		}
		return d
	}
	delivered := func() error {
		sent, got, counts := fl.lastSent(), srv.maxCounters(), srv.counts()
		udpSent, udpGot := 0, 0
		for s := range numSenders {
			if kindOf(s) == kindUDP {
				udpSent += sent[s]
				udpGot += counts[s]
				continue
			}
			if got[s] < sent[s] {
				return fmt.Errorf("sender %d (%s): sent up to %d, the event server has up to %d", s, kindOf(s), sent[s], got[s])
			}
		}
		if drops := udpDropsGone + udpDrops(); udpGot < udpSent-drops {
			return fmt.Errorf("UDP: %d sent, %d dropped by the kernel, the event server has %d", udpSent, drops, udpGot)
		}
		return nil
	}
	// killMark is the number of events the event server had when the
	// epproxy was killed (phase 5); repeats are allowed only after it.
	killMark := math.MaxInt / 2
	waitDelivered := func(what string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			err := delivered()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				recs, _, _ := srv.snapshot()
				t.Fatalf("timed out after 60s waiting for %s: %v\n%s", what, err,
					checkDelivery(recs, fl.lastSent(), killMark).failures(udpDropsGone+udpDrops()))
			}
			time.Sleep(10 * time.Millisecond)
		}
		step("all delivered")
	}
	// midway waits until the senders are past the middle of the phase
	// from lo to hi and the event server has a quarter of the phase's
	// events, so that the next fault strikes while events flow through
	// the chain.
	midway := func(lo, hi int) {
		t.Helper()
		e2etest.Eventually(t, 60*time.Second, "the middle of the phase", func() error {
			if n, want := fl.totalSent(), numSenders*(lo+hi)/2; n < want {
				return fmt.Errorf("%d sent, want %d", n, want)
			}
			if n, want := srv.received(), numSenders*(3*lo+hi)/4; n < want {
				return fmt.Errorf("%d at the event server, want %d", n, want)
			}
			return nil
		})
	}
	eppLog := func() *e2etest.Process { return c.Proc("epp-main") }

	// Warm-up: the chain forms and delivers.
	fl.setLimit(limit(10))
	fl.waitLimit(60 * time.Second)
	waitDelivered("the warm-up events")

	// 1. The event server is down for a while; the senders go on.
	eppOff := eppLog().LogSize()
	srv.down()
	step("1. event server down")
	fl.setLimit(limit(25))
	downAt, before := time.Now(), srv.received()
	fl.waitLimit(60 * time.Second)
	e2etest.Eventually(t, 30*time.Second, "the epproxy to fail a delivery", func() error {
		if !strings.Contains(eppLog().LogSince(eppOff), "delivery failed") {
			return errNotYet
		}
		return nil
	})
	if d := 1500*time.Millisecond - time.Since(downAt); d > 0 {
		time.Sleep(d) // the outage lasts a while
	}
	if n := srv.received(); n != before {
		t.Fatalf("the event server received %d events while down", n-before)
	}
	srv.up()
	step("1. event server up again after %s", time.Since(downAt).Round(time.Millisecond))
	waitDelivered("the events sent while the event server was down")

	// 2. A relay on the path is killed and restarted while events flow.
	fl.setLimit(limit(45))
	midway(limit(25), limit(45))
	eppOff = eppLog().LogSize()
	c.Proc("relay-dmz1").Kill(t)
	step("2. relay-dmz1 killed (SIGKILL)")
	e2etest.Eventually(t, 10*time.Second, "epp-main to notice the link down", func() error {
		if !strings.Contains(eppLog().LogSince(eppOff), "link down") {
			return errNotYet
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond) // down for a while: the forwarder finds no route
	c.Start("relay-dmz1")
	step("2. relay-dmz1 restarted")
	fl.waitLimit(60 * time.Second)
	waitDelivered("the events sent while relay-dmz1 was killed")

	// 3. The eventsink is killed and restarted. The senders hold still at
	// the phase's limit until the eventsink has spooled everything.
	// The event server is held down meanwhile (everything before has
	// reached it), so that the spool surely holds the phase's events
	// when the eventsink is killed.
	srv.down()
	fl.setKindLimit(kindUDP, limit(60))
	fl.waitLimit(60 * time.Second)
	fl.setLimit(limit(60))
	fl.waitLimit(60 * time.Second)
	e2etest.Eventually(t, 30*time.Second, "the eventsink to spool everything sent", func() error {
		if rx, _, err := e2etest.UDPSocket(udpPort); err != nil || rx > 0 {
			return fmt.Errorf("UDP receive queue %d bytes (%v)", rx, err)
		}
		sent, spooled, got := fl.lastSent(), spoolCounters(spoolDir), srv.maxCounters()
		for s := range numSenders {
			if max(spooled[s], got[s]) < sent[s] {
				if kindOf(s) == kindUDP && udpDrops() > 0 {
					continue // its last datagram may have been dropped
				}
				return fmt.Errorf("sender %d (%s): sent up to %d, spooled up to %d, at the event server up to %d",
					s, kindOf(s), sent[s], spooled[s], got[s])
			}
		}
		return nil
	})
	udpDropsGone += udpDrops()
	backlog := fl.totalSent() - srv.received()
	step("3. eventsink holds everything; backlog %d events", backlog)
	if backlog < numSenders*(limit(60)-limit(45))-udpDropsGone {
		t.Fatalf("only %d events in the spool", backlog)
	}
	// The event server comes back and the eventsink is killed while it
	// forwards the backlog: some batches delivered (their acks perhaps
	// not yet in the spool's ack file, so it sends them again after the
	// restart and the epproxy must drop them), the rest still spooled.
	base := srv.received()
	srv.up()
	for deadline := time.Now().Add(60 * time.Second); srv.received() < base+2*batchEvents; {
		if time.Now().After(deadline) {
			t.Fatalf("the backlog did not start to drain: %d delivered", srv.received()-base)
		}
		time.Sleep(time.Millisecond)
	}
	c.Proc("es-site-a").Kill(t)
	step("3. eventsink killed (SIGKILL) with %d of the backlog delivered", srv.received()-base)
	c.Start("es-site-a")
	e2etest.WaitListening(t, c.Addr(e2etest.PortLinesTCP), 20*time.Second) // the last listener it opens
	if _, _, err := e2etest.UDPSocket(udpPort); err != nil {
		t.Fatalf("eventsink restarted without its UDP listener: %v", err)
	}
	fl.reconnect()
	step("3. eventsink restarted")

	// 4. The epproxy is stopped cleanly and started again while events
	// flow.
	fl.setLimit(limit(75))
	midway(limit(60), limit(75))
	c.Proc("epp-main").Terminate(t, 20*time.Second)
	step("4. epp-main stopped (SIGTERM)")
	time.Sleep(500 * time.Millisecond) // down for a while
	c.Start("epp-main")
	step("4. epp-main restarted")
	fl.waitLimit(60 * time.Second)
	waitDelivered("the events sent around the epproxy's restart")

	// 5. The epproxy is killed and restarted while events flow.
	fl.setLimit(limit(90))
	midway(limit(75), limit(90))
	c.Proc("epp-main").Kill(t)
	srv.waitNoConns(10 * time.Second) // read what the killed epproxy wrote
	killMark = srv.received()
	step("5. epp-main killed (SIGKILL)")
	time.Sleep(500 * time.Millisecond) // down for a while
	c.Start("epp-main")
	step("5. epp-main restarted")
	fl.waitLimit(60 * time.Second)
	waitDelivered("the events sent around the epproxy's kill")

	// The rest, then the eventsink stops cleanly with nothing pending.
	fl.setLimit(perSender)
	fl.waitLimit(60 * time.Second)
	waitDelivered("the last events")
	udpDropsGone += udpDrops()
	fl.close()
	waitSpoolAcked(t, spoolDir)
	sink := c.Proc("es-site-a")
	sinkOff := sink.LogSize()
	sink.Terminate(t, 20*time.Second)
	st := statsLine(sink.LogSince(sinkOff))
	step("eventsink stopped: %v", st)
	if st["pending"] != "0" {
		t.Errorf("the eventsink stopped with %q events pending, want 0", st["pending"])
	}
	for _, n := range []string{"epp-main", "relay-dmz1", "relay-dmz2", "gwp-site-a"} {
		c.Proc(n).CheckRunning(t)
	}

	t.Logf("the faults at work: eventsink %d× \"forwarding interrupted\"; epp-main %d× \"delivery failed\", %d× \"ack not sent\"",
		countLog(c, "es-site-a", "forwarding interrupted"), countLog(c, "epp-main", "delivery failed"), countLog(c, "epp-main", "ack not sent"))

	recs, other, torn := srv.snapshot()
	if fl.writeErr.Load() > 0 {
		t.Errorf("%d sender writes failed", fl.writeErr.Load())
	}
	r := checkDelivery(recs, fl.lastSent(), killMark)
	t.Logf("%d events sent, %d received; %d repeats after the epproxy's kill -9 (allowed: at most %d); UDP: %d lost, %d dropped by the kernel",
		fl.totalSent(), len(recs), r.allowedRepeats, batchEvents, r.udpLost, udpDropsGone)
	if fl.totalSent() != numSenders*perSender {
		t.Errorf("%d events sent, want %d", fl.totalSent(), numSenders*perSender)
	}
	if msg := r.failures(udpDropsGone); msg != "" {
		t.Error(msg)
	}
	if len(other) > 0 {
		t.Errorf("the event server got %d lines that are not whole events, e.g. %q", len(other), other[0])
	}
	if len(torn) > 1 {
		t.Errorf("the event server got %d partial lines at the end of a connection (at most 1 allowed: the epproxy's kill -9): %q", len(torn), torn)
	}
}

// report is what checkDelivery found.
type report struct {
	lost           [numSenders][]int // counters sent but never received
	repeated       [numSenders][]int // counters received again where no repeat is allowed
	disordered     [numSenders][]int // counters received after a higher one of their sender
	phantom        [numSenders][]int // counters received but never sent
	allowedRepeats int
	udpLost        int
}

// checkDelivery checks the events the server received (in order of
// arrival) against the last counter each sender sent. Repeats are allowed
// only in the window where the epproxy, restarted after its kill -9,
// delivers again the batch it had in flight: the batchEvents events after
// the killMark-th.
func checkDelivery(recs []record, sent [numSenders]int, killMark int) report {
	var r report
	seen := make([][]int, numSenders)
	for s := range seen {
		seen[s] = make([]int, sent[s]+1)
	}
	var high [numSenders]int
	for i, e := range recs {
		s, n := e.sender, e.n
		if n > sent[s] {
			r.phantom[s] = append(r.phantom[s], n)
			continue
		}
		seen[s][n]++
		if seen[s][n] > 1 {
			if seen[s][n] == 2 && i >= killMark && i < killMark+batchEvents {
				r.allowedRepeats++
			} else {
				r.repeated[s] = append(r.repeated[s], n)
			}
			continue
		}
		if n < high[s] {
			r.disordered[s] = append(r.disordered[s], n)
		}
		high[s] = max(high[s], n)
	}
	for s := range numSenders {
		for n := 1; n <= sent[s]; n++ {
			if seen[s][n] == 0 {
				r.lost[s] = append(r.lost[s], n)
			}
		}
		if kindOf(s) == kindUDP {
			r.udpLost += len(r.lost[s])
		}
	}
	return r
}

// failures describes what is wrong, or returns "". UDP events may be
// missing up to the kernel's drops.
func (r report) failures(udpDrops int) string {
	var b strings.Builder
	all := func(senderKind) bool { return true }
	list := func(what string, v [numSenders][]int, which func(senderKind) bool) {
		for s := range numSenders {
			if len(v[s]) == 0 || !which(kindOf(s)) {
				continue
			}
			fmt.Fprintf(&b, "\n  sender %2d (%s): %d %s: %s", s, kindOf(s), len(v[s]), what, short(v[s]))
		}
	}
	list("lost", r.lost, func(k senderKind) bool { return k != kindUDP })
	if r.udpLost > udpDrops {
		fmt.Fprintf(&b, "\n  UDP: %d datagrams lost, but the kernel dropped only %d at the eventsink's socket", r.udpLost, udpDrops)
		list("lost", r.lost, func(k senderKind) bool { return k == kindUDP })
	}
	list("repeated", r.repeated, all)
	list("out of order", r.disordered, all)
	list("never sent", r.phantom, all)
	if r.allowedRepeats > batchEvents {
		fmt.Fprintf(&b, "\n  %d repeats after the epproxy's kill -9, more than one batch (%d)", r.allowedRepeats, batchEvents)
	}
	if b.Len() == 0 {
		return ""
	}
	return "events not delivered exactly once, in order:" + b.String()
}

// short lists the first few counters of v, as ranges.
func short(v []int) string {
	var parts []string
	i := 0
	for i < len(v) && len(parts) < 8 {
		j := i
		for j+1 < len(v) && v[j+1] == v[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d-%d", v[i], v[j]))
		} else {
			parts = append(parts, fmt.Sprint(v[i]))
		}
		i = j + 1
	}
	if i < len(v) {
		parts = append(parts, "...")
	}
	return strings.Join(parts, ",")
}
