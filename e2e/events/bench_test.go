package eventse2e

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/relaychain/relaychain/e2e/e2etest"
)

// BenchmarkEventsEndToEnd measures events per second end to end: TCP
// senders → eventsink (spool) → gwp-site-a → relay-dmz2 → relay-dmz1 →
// epp-main → event server, with the real daemons. One op is one event; the
// time runs from the first write until the event server has read the last
// event. Each sub-benchmark starts its own chain (outside the timer).
//
// The spool's fsync is batched (interval, as configured by default), and
// for comparison fsync "always" (one fsync per event, before it counts as
// received). The epproxy fsyncs its deduplication state once per batch in
// both cases. scripts/bench-events.sh runs it and prints a summary.
func BenchmarkEventsEndToEnd(b *testing.B) {
	for _, bc := range []struct{ name, fsync string }{
		{"fsync=interval-200ms", "    fsync: interval\n    fsync_interval: 200ms\n"},
		{"fsync=always", "    fsync: always\n"},
	} {
		b.Run(bc.name, func(b *testing.B) { benchEvents(b, bc.fsync) })
	}
}

// The bench's senders: four EIF and four line senders over TCP, each
// writing up to benchChunk events at once; sender warmSender only checks
// that the chain is up.
var benchSenders = []int{0, 1, 2, 3, numEIF, numEIF + 1, numEIF + 2, numEIF + 3}

const (
	warmSender = numEIF - 1
	benchChunk = 64
)

func benchEvents(b *testing.B, fsync string) {
	c := newChain(b, chainOpts{fsync: fsync})
	srv := startEventServer(b, c.Addr(e2etest.PortEvents))
	c.StartAll()
	e2etest.WaitListening(b, c.Addr(e2etest.PortLinesTCP), 10*time.Second)
	addr := func(s int) string {
		if kindOf(s) == kindEIF {
			return c.Addr(e2etest.PortEIF)
		}
		return c.Addr(e2etest.PortLinesTCP)
	}
	// Warm up: one event through the whole chain.
	send(b, addr(warmSender), warmSender, 1, 1)
	e2etest.Eventually(b, 30*time.Second, "the chain to deliver", func() error {
		if srv.maxCounters()[warmSender] < 1 {
			return errNotYet
		}
		return nil
	})

	per := make([]int, len(benchSenders))
	for i := range b.N {
		per[i%len(per)]++
	}
	size := 0
	for i, s := range benchSenders {
		if per[i] > 0 {
			size += per[i] * (len(eventText(s, per[i])) + 1)
		}
	}
	b.SetBytes(int64(size / max(b.N, 1)))
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i, s := range benchSenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			send(b, addr(s), s, 1, per[i])
		}()
	}
	wg.Wait()
	e2etest.Eventually(b, 10*time.Minute, "every event at the event server", func() error {
		got := srv.counts()
		for i, s := range benchSenders {
			if got[s] < per[i] {
				return fmt.Errorf("sender %d: %d of %d", s, got[s], per[i])
			}
		}
		return nil
	})
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	recs, _, _ := srv.snapshot()
	var sent [numSenders]int
	sent[warmSender] = 1
	for i, s := range benchSenders {
		sent[s] = per[i]
	}
	if msg := checkDelivery(recs, sent, 0).failures(0); msg != "" {
		b.Fatal(msg)
	}
}

// send writes events from..to of sender over one TCP connection, up to
// benchChunk events per write.
func send(tb testing.TB, addr string, sender, from, to int) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		tb.Errorf("dial %s: %v", addr, err)
		return
	}
	defer conn.Close()
	buf := make([]byte, 0, benchChunk*128)
	for n := from; n <= to; {
		buf = buf[:0]
		for ; n <= to && len(buf) < benchChunk*100; n++ {
			buf = append(append(buf, eventText(sender, n)...), '\n')
		}
		_ = conn.SetWriteDeadline(time.Now().Add(time.Minute))
		if _, err := conn.Write(buf); err != nil {
			tb.Errorf("sender %d: write: %v", sender, err)
			return
		}
	}
}
