package eventse2e

import (
	"strings"
	"testing"
)

// The final check of TestEventsSurviveFaults finds lost, repeated,
// reordered and unknown events, and allows repeats only in the window
// after the epproxy's kill -9.
func TestCheckDelivery(t *testing.T) {
	const tcp, udp = 0, numEIF + numLinesTC
	var sent [numSenders]int
	sent[tcp], sent[udp] = 5, 3
	recs := func(rs ...record) []record { return rs }
	cases := []struct {
		name     string
		recs     []record
		killMark int
		udpDrops int
		want     []string // substrings of the failure; none: no failure
	}{
		{"all once in order", recs(record{tcp, 1}, record{udp, 1}, record{tcp, 2}, record{tcp, 3}, record{udp, 2}, record{tcp, 4}, record{tcp, 5}, record{udp, 3}), 0, 0, nil},
		{"tcp lost", recs(record{tcp, 1}, record{tcp, 2}, record{tcp, 5}, record{udp, 1}, record{udp, 2}, record{udp, 3}), 0, 0,
			[]string{"sender  0 (eif/tcp): 2 lost: 3-4"}},
		{"repeat in the window", recs(record{tcp, 1}, record{tcp, 2}, record{tcp, 3}, record{tcp, 2}, record{tcp, 3}, record{tcp, 4}, record{tcp, 5},
			record{udp, 1}, record{udp, 2}, record{udp, 3}), 3, 0, nil},
		{"repeat outside the window", recs(record{tcp, 1}, record{tcp, 1}, record{tcp, 2}, record{tcp, 3}, record{tcp, 4}, record{tcp, 5},
			record{udp, 1}, record{udp, 2}, record{udp, 3}), 5, 0, []string{"1 repeated: 1"}},
		{"out of order", recs(record{tcp, 1}, record{tcp, 3}, record{tcp, 2}, record{tcp, 4}, record{tcp, 5},
			record{udp, 1}, record{udp, 2}, record{udp, 3}), 0, 0, []string{"1 out of order: 2"}},
		{"never sent", recs(record{tcp, 1}, record{tcp, 2}, record{tcp, 3}, record{tcp, 4}, record{tcp, 5}, record{tcp, 6},
			record{udp, 1}, record{udp, 2}, record{udp, 3}), 0, 0, []string{"1 never sent: 6"}},
		{"udp lost within the drops", recs(record{tcp, 1}, record{tcp, 2}, record{tcp, 3}, record{tcp, 4}, record{tcp, 5}, record{udp, 2}), 0, 2, nil},
		{"udp lost beyond the drops", recs(record{tcp, 1}, record{tcp, 2}, record{tcp, 3}, record{tcp, 4}, record{tcp, 5}, record{udp, 2}), 0, 1,
			[]string{"UDP: 2 datagrams lost, but the kernel dropped only 1", "sender 14 (lines/udp): 2 lost: 1,3"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := checkDelivery(tc.recs, sent, tc.killMark).failures(tc.udpDrops)
			if len(tc.want) == 0 && got != "" {
				t.Fatalf("unexpected failure: %s", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("failure %q does not say %q", got, w)
				}
			}
		})
	}
}
