package spool

import (
	"testing"
	"time"
)

// BenchmarkAppendReadAck measures the spool's throughput with batched fsync:
// one goroutine appends 200-byte events while the loop reads them in batches
// of 256 and acknowledges each batch, as the forwarder does.
func BenchmarkAppendReadAck(b *testing.B) {
	for _, sp := range []SyncPolicy{Interval(100 * time.Millisecond), Always()} {
		b.Run(sp.String(), func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{SegmentSize: 4 << 20, Sync: sp})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			data := make([]byte, 200)
			for i := range data {
				data[i] = 'a' + byte(i%26)
			}
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			next := uint64(1)
			for i := 0; i < b.N; i++ {
				if _, err := s.Append(1, "192.0.2.10:40000", data); err != nil {
					b.Fatal(err)
				}
				if i%256 == 255 || i == b.N-1 {
					recs, err := s.Read(next, 256, 1<<20)
					if err != nil || len(recs) == 0 {
						b.Fatalf("Read: %d, %v", len(recs), err)
					}
					next = recs[len(recs)-1].Seq + 1
					if err := s.Ack(next - 1); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			if st := s.Stats(); st.Acked != uint64(b.N) {
				b.Fatalf("acked %d of %d", st.Acked, b.N)
			}
		})
	}
}
