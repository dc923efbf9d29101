package mux

import (
	"fmt"
	"testing"

	"github.com/sirupsen/logrus"
)

// BenchmarkAcceptLabels: a relay's full announcement of 10,000 labels
// taken by a parent whose link to it accepts any label, one pattern
// that matches them all, or ten patterns of which the last matches;
// ns/label is per label taken.
func BenchmarkAcceptLabels(b *testing.B) {
	const n = 10000
	labels := make([]string, n)
	for i := range labels {
		labels[i] = fmt.Sprintf("gwp-%05d", i)
	}
	ten := []string{"a-*", "b-*", "c-*", "d-*", "e-*", "f-*", "g-*", "h-*", "i-*", "gwp-*"}
	for _, tc := range []struct {
		name   string
		accept []string
	}{{"any", nil}, {"one-pattern", []string{"gwp-*"}}, {"ten-patterns", ten}} {
		b.Run(tc.name, func(b *testing.B) {
			log := levelLog(logrus.InfoLevel)
			for i := 0; i < b.N; i++ {
				t := newRoutingTable("root", log, 2*n, 2*n)
				t.setAcceptLabels([]LinkConfig{{Peer: "relay", AcceptLabels: tc.accept}})
				if _, err := t.replace("relay", labels); err != nil {
					b.Fatal(err)
				}
				if t.size() != n+1 || t.refusedLabels != 0 { // and the relay's own
					b.Fatalf("%d routes, %d refused", t.size(), t.refusedLabels)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/label")
		})
	}
}
