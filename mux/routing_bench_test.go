package mux

import (
	"fmt"
	"io"
	"runtime"
	"testing"

	"github.com/sirupsen/logrus"
)

// Benchmarks of the routing table alone (PROTOCOL.md section 3): what a
// root holds per route, and what the changes of a large table cost.
// converge_test.go simulates the whole tree around it. The labels are
// those of the simulation: relay-NN, its leaves gw-NN-LLL, their
// endpoints ep-NN-LLL-EE.
//
//	go test -run '^$' -bench RoutingTable ./mux/

// levelLog is a logger at level, formatting as text into io.Discard:
// level 3 (info) is the daemons' default.
func levelLog(level logrus.Level) *logrus.Entry {
	lg := logrus.New()
	lg.SetOutput(io.Discard)
	lg.SetLevel(level)
	return logrus.NewEntry(lg)
}

// subtreeLabels is what a relay announces below itself: leaves leaves,
// each followed by its endpoints.
func subtreeLabels(relay, leaves, endpoints int) []string {
	var out []string
	for i := 0; i < leaves; i++ {
		out = append(out, fmt.Sprintf("gw-%02d-%03d", relay, i))
		for e := 0; e < endpoints; e++ {
			out = append(out, fmt.Sprintf("ep-%02d-%03d-%02d", relay, i, e))
		}
	}
	return out
}

// announcementBodies encodes a whole announcement of child as its control
// loop sends it (a WHO reply of at most maxChunk labels, the child's own
// first, then deltas with the rest), each message without its length.
func announcementBodies(child string, labels []string) [][]byte {
	all := append([]string{child}, labels...)
	first := min(len(all), maxChunk)
	msgs := []ctrlMsg{{Type: ctrlWhoReply, Labels: all[:first]}}
	seq := uint32(0)
	for rest := all[first:]; len(rest) > 0; {
		k := min(len(rest), maxChunk)
		seq++
		msgs = append(msgs, ctrlMsg{Type: ctrlDelta, Seq: seq, Labels: rest[:k]})
		rest = rest[k:]
	}
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		out[i] = m.encode()[4:]
	}
	return out
}

// takeAnnouncement decodes the messages of one child and applies them to
// t as controlAsParent does.
func takeAnnouncement(tb testing.TB, t *routingTable, child string, bodies [][]byte) {
	for _, body := range bodies {
		m, err := decodeCtrl(body)
		if err != nil {
			tb.Fatal(err)
		}
		if m.Type == ctrlWhoReply {
			_, err = t.replace(child, m.Labels[1:])
		} else {
			_, err = t.apply(child, m.Labels, m.Removed)
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkRoutingTableHeap: the routing table of a root with 20 relays
// below it, each announcing 100 leaves with 50 endpoints each (102,020
// routes with the relays' own labels), built as the control loop builds
// it: each message decoded (the table keeps the decoder's strings), a
// whole announcement by replace, the rest by apply; the node logging at
// level 3. One op builds one table. Metrics: heap-B/route, the live heap
// after a GC with the table built, less before, per route: the labels'
// strings, the routes, and each child's set of what it announced;
// ns/route, the time to decode and build.
func BenchmarkRoutingTableHeap(b *testing.B) {
	const relays, leaves, endpoints = 20, 100, 50
	bodies := make([][][]byte, relays)
	for r := range bodies {
		bodies[r] = announcementBodies(fmt.Sprintf("relay-%02d", r), subtreeLabels(r, leaves, endpoints))
	}
	log := levelLog(logrus.InfoLevel)
	var heap uint64
	routes := 0
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.StartTimer()
		t := newRoutingTable("root", log, DefaultTuning().MaxLabelsPerLink, 200000)
		for r := range bodies {
			takeAnnouncement(b, t, fmt.Sprintf("relay-%02d", r), bodies[r])
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		routes = t.size()
		if want := relays * (1 + leaves*(1+endpoints)); routes != want {
			b.Fatalf("%d routes, want %d", routes, want)
		}
		heap += after.HeapAlloc - before.HeapAlloc
		runtime.KeepAlive(t)
		b.StartTimer()
	}
	b.ReportMetric(float64(heap)/float64(b.N)/float64(routes), "heap-B/route")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(routes), "ns/route")
}

// BenchmarkRoutingTableDropChildren: a relay with many leaves below it,
// each announcing 50 endpoints, loses every leaf's link (its site's
// network went down, or it shuts down): one drop per child. One op drops
// them all, from a table built beforehand; ns/label is per label removed.
// The cost per label must not grow with the number of children.
func BenchmarkRoutingTableDropChildren(b *testing.B) {
	const endpoints = 50
	for _, children := range []int{100, 1000} {
		b.Run(fmt.Sprintf("children=%d", children), func(b *testing.B) {
			log := levelLog(logrus.InfoLevel)
			labels := make([][]string, children)
			for c := range labels {
				for e := 0; e < endpoints; e++ {
					labels[c] = append(labels[c], fmt.Sprintf("ep-%04d-%02d", c, e))
				}
			}
			removed := 0
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				t := newRoutingTable("relay", log, DefaultTuning().MaxLabelsPerLink, 200000)
				for c := range labels {
					if _, err := t.replace(fmt.Sprintf("gw-%04d", c), labels[c]); err != nil {
						b.Fatal(err)
					}
				}
				removed += t.size()
				b.StartTimer()
				for c := range labels {
					t.drop(fmt.Sprintf("gw-%04d", c))
				}
				if n := t.size(); n != 0 {
					b.Fatalf("%d routes left", n)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(removed), "ns/label")
		})
	}
}
