package spool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testLog returns a logger that writes to t.Log until the test ends.
func testLog(t *testing.T) *logrus.Entry {
	t.Helper()
	l := logrus.New()
	w := &testWriter{t: t}
	l.SetOutput(w)
	l.SetLevel(logrus.DebugLevel)
	t.Cleanup(w.stop)
	return logrus.NewEntry(l)
}

type testWriter struct {
	t       *testing.T
	stopped atomic.Bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	if !w.stopped.Load() {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func (w *testWriter) stop() { w.stopped.Store(true) }

// open opens a spool in dir and closes it when the test ends.
func open(t *testing.T, dir string, opts Options) *Spool {
	t.Helper()
	if opts.Log == nil {
		opts.Log = testLog(t)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// appendN appends n events "event-<i>" from "src" and checks their sequence
// numbers follow on from first.
func appendN(t *testing.T, s *Spool, first uint64, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		seq, err := s.Append(1, "10.0.0.1:514", []byte(fmt.Sprintf("event-%d", first+uint64(i))))
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		if seq != first+uint64(i) {
			t.Fatalf("Append seq = %d, want %d", seq, first+uint64(i))
		}
	}
}

// readSeqs reads everything from from and checks each record's contents.
func readSeqs(t *testing.T, s *Spool, from uint64, batch int) []uint64 {
	t.Helper()
	var seqs []uint64
	for {
		recs, err := s.Read(from, batch, 1<<20)
		if err != nil {
			t.Fatalf("Read(%d): %v", from, err)
		}
		if len(recs) == 0 {
			return seqs
		}
		if len(recs) > batch {
			t.Fatalf("Read returned %d records, limit %d", len(recs), batch)
		}
		for _, r := range recs {
			if want := fmt.Sprintf("event-%d", r.Seq); string(r.Data) != want || r.Source != "10.0.0.1:514" || r.Framing != 1 {
				t.Fatalf("record %d = %q from %q framing %d", r.Seq, r.Data, r.Source, r.Framing)
			}
			if time.Since(r.Time) > time.Hour || r.Time.After(time.Now()) {
				t.Fatalf("record %d time %v", r.Seq, r.Time)
			}
			if len(seqs) > 0 && r.Seq <= seqs[len(seqs)-1] {
				t.Fatalf("sequence %d after %d", r.Seq, seqs[len(seqs)-1])
			}
			seqs = append(seqs, r.Seq)
		}
		from = recs[len(recs)-1].Seq + 1
	}
}

// span returns first..last.
func span(first, last uint64) []uint64 {
	var s []uint64
	for i := first; i <= last; i++ {
		s = append(s, i)
	}
	return s
}

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestAppendReadAck(t *testing.T) {
	s := open(t, t.TempDir(), Options{SegmentSize: 200})
	appendN(t, s, 1, 20)
	if got := readSeqs(t, s, 1, 3); !equalSeqs(got, span(1, 20)) {
		t.Fatalf("read %v", got)
	}
	if got := readSeqs(t, s, 7, 100); !equalSeqs(got, span(7, 20)) {
		t.Fatalf("read from 7: %v", got)
	}
	st := s.Stats()
	if st.Segments < 3 {
		t.Fatalf("segments = %d, want several of 200 bytes", st.Segments)
	}
	if err := s.Ack(12); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	if got := readSeqs(t, s, 1, 5); !equalSeqs(got, span(13, 20)) {
		t.Fatalf("read after ack: %v", got)
	}
	st2 := s.Stats()
	if st2.Segments >= st.Segments || st2.Bytes >= st.Bytes || st2.Acked != 12 || st2.Appended != 20 {
		t.Fatalf("stats after ack %+v, before %+v", st2, st)
	}
	if err := s.Ack(21); !errors.Is(err, ErrBadAck) {
		t.Fatalf("Ack(21) = %v, want ErrBadAck", err)
	}
	if err := s.Ack(5); err != nil {
		t.Fatalf("Ack backwards: %v", err)
	}
	if err := s.Ack(20); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	if st := s.Stats(); st.Segments != 0 || st.Bytes != 0 {
		t.Fatalf("everything acknowledged, stats %+v", st)
	}
	files, _ := filepath.Glob(filepath.Join(s.Dir(), "*.seg"))
	if len(files) != 0 {
		t.Fatalf("segment files left: %v", files)
	}
}

func TestReadBytesBound(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	big := make([]byte, 1000)
	for i := 0; i < 5; i++ {
		if _, err := s.Append(2, "s", big); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := s.Read(1, 100, 2500)
	if err != nil || len(recs) != 2 {
		t.Fatalf("Read = %d records, %v; want 2", len(recs), err)
	}
	recs, err = s.Read(1, 100, 10)
	if err != nil || len(recs) != 1 {
		t.Fatalf("Read below one record = %d records, %v; want 1", len(recs), err)
	}
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{SegmentSize: 150})
	appendN(t, s, 1, 10)
	if err := s.Ack(4); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.Append(1, "x", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v", err)
	}
	s = open(t, dir, Options{SegmentSize: 150})
	if st := s.Stats(); st.Acked != 4 || st.NextSeq != 11 {
		t.Fatalf("reopened stats %+v", st)
	}
	if got := readSeqs(t, s, 1, 4); !equalSeqs(got, span(5, 10)) {
		t.Fatalf("read after reopen: %v", got)
	}
	appendN(t, s, 11, 3)
	if got := readSeqs(t, s, 5, 100); !equalSeqs(got, span(5, 13)) {
		t.Fatalf("read: %v", got)
	}
}

func TestSeqSurvivesEmptySpool(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	appendN(t, s, 1, 5)
	if err := s.Ack(5); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, dir, Options{})
	appendN(t, s, 6, 1)
}

// crashCopy copies the spool directory as it is on disk now, as if the
// process had been killed: the copy was never closed.
func crashCopy(t *testing.T, dir string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// lastSegment returns the path of the newest segment file.
func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(files) == 0 {
		t.Fatal("no segment")
	}
	return files[len(files)-1]
}

func TestTornRecord(t *testing.T) {
	tests := []struct {
		name string
		tear func(t *testing.T, path string)
		keep int // records of 5 kept
	}{
		{"truncated mid-record", func(t *testing.T, path string) {
			fi, _ := os.Stat(path)
			if err := os.Truncate(path, fi.Size()-5); err != nil {
				t.Fatal(err)
			}
		}, 4},
		{"truncated mid-header", func(t *testing.T, path string) {
			fi, _ := os.Stat(path)
			one := recordSize("10.0.0.1:514", []byte("event-5"))
			if err := os.Truncate(path, fi.Size()-one+3); err != nil {
				t.Fatal(err)
			}
		}, 4},
		{"garbage appended", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte("\x20\x00\x00\x00garbage that is not a record"))
			f.Close()
		}, 5},
		{"last byte flipped", func(t *testing.T, path string) {
			b, _ := os.ReadFile(path)
			b[len(b)-1] ^= 0xff
			os.WriteFile(path, b, 0o600)
		}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t, t.TempDir(), Options{})
			appendN(t, s, 1, 5)
			dir := crashCopy(t, s.Dir())
			tt.tear(t, lastSegment(t, dir))
			s2 := open(t, dir, Options{})
			if got := readSeqs(t, s2, 1, 10); !equalSeqs(got, span(1, uint64(tt.keep))) {
				t.Fatalf("after reopen read %v, want 1..%d", got, tt.keep)
			}
			st := s2.Stats()
			if st.TornTruncated != 1 {
				t.Fatalf("TornTruncated = %d, want 1", st.TornTruncated)
			}
			// The number of a record lost in a crash is never used again.
			seq, err := s2.Append(1, "10.0.0.1:514", []byte("after"))
			if err != nil || seq <= 5 {
				t.Fatalf("Append after crash = %d, %v; want a sequence above 5", seq, err)
			}
			s2.Close()
			s3 := open(t, dir, Options{})
			if st := s3.Stats(); st.TornTruncated != 0 || st.NextSeq != seq+1 {
				t.Fatalf("second reopen stats %+v, want no torn record and next %d", st, seq+1)
			}
		})
	}
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	open(t, dir, Options{})
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
}

func TestBadOptions(t *testing.T) {
	for _, o := range []Options{
		{SegmentSize: 10},
		{SegmentSize: 1000, MaxBytes: 500},
		{SegmentSize: 1000, MaxRecord: 2000},
		{Full: 7},
	} {
		if _, err := Open(t.TempDir(), o); !errors.Is(err, ErrBadOptions) {
			t.Fatalf("Open(%+v) = %v, want ErrBadOptions", o, err)
		}
	}
}

func TestTooLarge(t *testing.T) {
	s := open(t, t.TempDir(), Options{SegmentSize: 1000, MaxRecord: 100})
	if _, err := s.Append(1, "src", make([]byte, 98)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Append = %v, want ErrTooLarge", err)
	}
	if _, err := s.Append(1, "src", make([]byte, 97)); err != nil {
		t.Fatalf("Append at the limit: %v", err)
	}
}

func TestFullRefuse(t *testing.T) {
	one := recordSize("10.0.0.1:514", []byte("event-1"))
	s := open(t, t.TempDir(), Options{SegmentSize: 2 * one, MaxBytes: 4 * one, Full: Refuse})
	appendN(t, s, 1, 4)
	for i := 0; i < 3; i++ {
		if _, err := s.Append(1, "10.0.0.1:514", []byte("event-5")); !errors.Is(err, ErrFull) {
			t.Fatalf("Append when full = %v, want ErrFull", err)
		}
	}
	if st := s.Stats(); st.RefusedFull != 3 || st.Bytes != 4*one || st.Appended != 4 {
		t.Fatalf("stats %+v", st)
	}
	// Acknowledging frees a segment: appends work again.
	if err := s.Ack(2); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 5, 2)
	if got := readSeqs(t, s, 1, 10); !equalSeqs(got, span(3, 6)) {
		t.Fatalf("read %v", got)
	}
}

func TestFullDropOldest(t *testing.T) {
	one := recordSize("10.0.0.1:514", []byte("event-1"))
	s := open(t, t.TempDir(), Options{SegmentSize: 2 * one, MaxBytes: 4 * one, Full: DropOldest})
	appendN(t, s, 1, 4)
	// The forwarder has sent 1 and 2 and waits for their ack.
	next := uint64(3)
	appendN(t, s, 5, 1) // drops segment 1-2
	st := s.Stats()
	if st.DroppedFull != 2 || st.Bytes > 4*one || st.RefusedFull != 0 {
		t.Fatalf("stats after first drop %+v", st)
	}
	if err := s.Ack(1); err != nil { // late ack of a dropped record
		t.Fatal(err)
	}
	appendN(t, s, 6, 4) // drops 3-4, then 5-6
	if st := s.Stats(); st.DroppedFull != 6 || st.Bytes > 4*one {
		t.Fatalf("stats after second drop %+v", st)
	}
	// The "to send" position moves past the dropped records.
	recs, err := s.Read(next, 10, 1<<20)
	if err != nil || len(recs) == 0 || recs[0].Seq != 7 {
		t.Fatalf("Read(%d) = %v, %v; want from 7", next, recs, err)
	}
	if got := readSeqs(t, s, 1, 10); !equalSeqs(got, span(7, 9)) {
		t.Fatalf("read %v", got)
	}
}

func TestFullDropOldestSingleSegment(t *testing.T) {
	one := recordSize("10.0.0.1:514", []byte("event-1"))
	dir := t.TempDir()
	s := open(t, dir, Options{SegmentSize: 3 * one, MaxBytes: 3 * one, Full: DropOldest})
	appendN(t, s, 1, 4)
	if st := s.Stats(); st.DroppedFull != 3 || st.Segments != 1 {
		t.Fatalf("stats %+v", st)
	}
	s.Close()
	s = open(t, dir, Options{SegmentSize: 3 * one, MaxBytes: 3 * one, Full: DropOldest})
	if got := readSeqs(t, s, 1, 10); !equalSeqs(got, span(4, 4)) {
		t.Fatalf("read after reopen %v", got)
	}
	appendN(t, s, 5, 1)
}

func TestWait(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Wait(ctx, 1) }()
	appendN(t, s, 1, 1)
	if err := <-done; err != nil {
		t.Fatalf("Wait = %v", err)
	}
	// Nothing from 2 on: Wait ends with its context.
	short, cancel2 := context.WithCancel(context.Background())
	go func() { done <- s.Wait(short, 2) }()
	cancel2()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v, want context.Canceled", err)
	}
	// Close wakes waiters.
	go func() { done <- s.Wait(ctx, 2) }()
	s.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Wait after Close = %v, want ErrClosed", err)
	}
}

func TestSyncInterval(t *testing.T) {
	s := open(t, t.TempDir(), Options{Sync: Interval(5 * time.Millisecond)})
	// The background goroutine may sync while the appends run (on a
	// loaded machine ten appends can take longer than 5ms), so the first
	// background sync holds it in the hook until the test has counted:
	// then exactly one sync happened, the background one, and none by
	// Append.
	synced := make(chan struct{}, 100)
	hold := make(chan struct{})
	release := sync.OnceFunc(func() { close(hold) })
	t.Cleanup(release) // before the spool's Close, which waits for the goroutine
	s.mu.Lock()
	s.afterSync = func() {
		synced <- struct{}{}
		<-hold
	}
	s.mu.Unlock()
	start := time.Now()
	appendN(t, s, 1, 10)
	if st := s.Stats(); st.Syncs > 1 {
		t.Fatalf("Syncs = %d right after 10 Appends under Interval: Append synced", st.Syncs)
	}
	select {
	case <-synced:
	case <-time.After(10 * time.Second):
		t.Fatal("no background sync")
	}
	if st := s.Stats(); st.Syncs != 1 {
		t.Fatalf("Syncs = %d after 10 Appends and one background sync, want 1", st.Syncs)
	}
	release()
	appendN(t, s, 11, 1)
	select {
	case <-synced:
	case <-time.After(10 * time.Second):
		t.Fatal("no second background sync")
	}
	elapsed := time.Since(start)
	if n := s.Stats().Syncs; n < 2 || n > uint64(elapsed/(5*time.Millisecond))+1 {
		t.Fatalf("%d syncs in %v at most every 5ms", n, elapsed)
	}
	// Nothing written: no sync.
	n := s.Stats().Syncs
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().Syncs; got != n {
		t.Fatalf("Close synced a clean spool: %d -> %d", n, got)
	}
}

func TestSyncAlways(t *testing.T) {
	s := open(t, t.TempDir(), Options{Sync: Always()})
	appendN(t, s, 1, 3)
	if st := s.Stats(); st.Syncs != 3 {
		t.Fatalf("Syncs = %d, want one per append", st.Syncs)
	}
}

func TestCorruptAckFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ackName), []byte("nonsense"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open = %v, want ErrCorrupt", err)
	}
}

func TestAckPersistedUnderInterval(t *testing.T) {
	s := open(t, t.TempDir(), Options{SegmentSize: 150, Sync: Interval(5 * time.Millisecond)})
	synced := make(chan struct{}, 100)
	s.mu.Lock()
	s.afterSync = func() { synced <- struct{}{} }
	s.mu.Unlock()
	appendN(t, s, 1, 8)
	if err := s.Ack(3); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for {
		if acked, _, err := readAck(s.Dir()); err == nil && acked == 3 {
			break
		}
		select {
		case <-synced:
		case <-deadline:
			t.Fatal("ack file not written by the background goroutine")
		}
	}
	s2 := open(t, crashCopy(t, s.Dir()), Options{SegmentSize: 150})
	if got := readSeqs(t, s2, 1, 10); !equalSeqs(got, span(4, 8)) {
		t.Fatalf("after crash read %v", got)
	}
	// Close writes the latest ack.
	if err := s.Ack(6); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s3 := open(t, s.Dir(), Options{})
	if st := s3.Stats(); st.Acked != 6 || st.NextSeq != 9 {
		t.Fatalf("after Close stats %+v", st)
	}
}
