package delivery_test

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/relaychain/relaychain/epproxy/delivery"
	"github.com/relaychain/relaychain/events"
)

// batchOf returns a batch of line events with the given sequence numbers.
func batchOf(t *testing.T, sink string, seqs ...uint64) *events.Batch {
	t.Helper()
	b := &events.Batch{Sink: sink}
	for _, s := range seqs {
		b.Events = append(b.Events, events.Event{Seq: s, Framing: events.Line, Source: "src", Data: []byte("ev")})
	}
	return b
}

func seqsOf(evs []events.Event) []uint64 {
	var s []uint64
	for _, e := range evs {
		s = append(s, e.Seq)
	}
	return s
}

func TestDedupPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dedup.json")
	d, err := delivery.OpenDedup(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := seqsOf(d.Filter(batchOf(t, "a", 1, 2, 3))); len(got) != 3 {
		t.Fatalf("fresh state filtered %v", got)
	}
	if err := d.Commit("a", 3); err != nil {
		t.Fatal(err)
	}
	if err := d.Commit("b", 10); err != nil {
		t.Fatal(err)
	}
	if err := d.Commit("a", 2); err != nil { // backwards: ignored
		t.Fatal(err)
	}
	d2, err := delivery.OpenDedup(path)
	if err != nil {
		t.Fatal(err)
	}
	if d2.Delivered("a") != 3 || d2.Delivered("b") != 10 || d2.Delivered("c") != 0 {
		t.Fatalf("reopened: a=%d b=%d c=%d", d2.Delivered("a"), d2.Delivered("b"), d2.Delivered("c"))
	}
	if got := seqsOf(d2.Filter(batchOf(t, "a", 2, 3, 4, 5))); len(got) != 2 || got[0] != 4 {
		t.Fatalf("Filter = %v, want [4 5]", got)
	}
	if got := d2.Filter(batchOf(t, "b", 9, 10)); got != nil {
		t.Fatalf("Filter of delivered events = %v", seqsOf(got))
	}
	if err := d2.Forget("b"); err != nil {
		t.Fatal(err)
	}
	d3, _ := delivery.OpenDedup(path)
	if d3.Delivered("b") != 0 || d3.Delivered("a") != 3 {
		t.Fatal("Forget not persisted")
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file left: %v", err)
	}
}

func TestDedupBadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dedup.json")
	os.WriteFile(path, []byte("{"), 0o600)
	if _, err := delivery.OpenDedup(path); err == nil {
		t.Fatal("OpenDedup accepted a broken file")
	}
	os.WriteFile(path, []byte(`{"version":2,"delivered":{}}`), 0o600)
	if _, err := delivery.OpenDedup(path); !errors.Is(err, events.ErrVersion) {
		t.Fatalf("OpenDedup = %v, want ErrVersion", err)
	}
}

func TestDedupCommitFailureKeepsState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing-dir", "dedup.json")
	d, err := delivery.OpenDedup(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Commit("a", 5); err == nil {
		t.Fatal("Commit into a missing directory succeeded")
	}
	if d.Delivered("a") != 0 {
		t.Fatal("failed Commit changed the state")
	}
}

func TestProcess(t *testing.T) {
	d, err := delivery.OpenDedup(filepath.Join(t.TempDir(), "dedup.json"))
	if err != nil {
		t.Fatal(err)
	}
	var delivered []uint64
	deliver := func(sink string, evs []events.Event) error {
		delivered = append(delivered, seqsOf(evs)...)
		return nil
	}
	ack, err := d.Process(batchOf(t, "a", 1, 2, 3), deliver)
	if err != nil || ack.UpTo != 3 {
		t.Fatalf("Process = %+v, %v", ack, err)
	}
	// The ack was lost: the sink sends 2-3 again with 4.
	ack, err = d.Process(batchOf(t, "a", 2, 3, 4), deliver)
	if err != nil || ack.UpTo != 4 {
		t.Fatalf("Process = %+v, %v", ack, err)
	}
	// All duplicates: acknowledged, nothing delivered.
	ack, err = d.Process(batchOf(t, "a", 4), deliver)
	if err != nil || ack.UpTo != 4 {
		t.Fatalf("Process = %+v, %v", ack, err)
	}
	if len(delivered) != 4 || delivered[3] != 4 {
		t.Fatalf("delivered %v, want 1..4 once", delivered)
	}
	// A failed delivery is neither committed nor acknowledged.
	boom := errors.New("event server down")
	if _, err := d.Process(batchOf(t, "a", 5), func(string, []events.Event) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Process = %v, want boom", err)
	}
	if d.Delivered("a") != 4 {
		t.Fatalf("Delivered = %d after a failed delivery", d.Delivered("a"))
	}
}

func TestProcessConcurrentSessions(t *testing.T) {
	d, err := delivery.OpenDedup(filepath.Join(t.TempDir(), "dedup.json"))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	count := map[uint64]int{}
	deliver := func(sink string, evs []events.Event) error {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range evs {
			count[e.Seq]++
		}
		return nil
	}
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := uint64(1); s <= 20; s++ {
				if _, err := d.Process(batchOf(t, "a", s), deliver); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	for s := uint64(1); s <= 20; s++ {
		if count[s] != 1 {
			t.Fatalf("event %d delivered %d times", s, count[s])
		}
	}
}
