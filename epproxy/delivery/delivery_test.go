package delivery_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relaychain/relaychain/epproxy/delivery"
	"github.com/relaychain/relaychain/events"
	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// newService opens a Service and closes it when the test ends.
func newService(t testing.TB, cfg delivery.Config) *delivery.Service {
	t.Helper()
	if cfg.StateFile == "" {
		cfg.StateFile = filepath.Join(t.TempDir(), "state", "events-state.json")
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 2 * time.Second
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 2 * time.Second
	}
	s, err := delivery.New(cfg, muxtest.Log(t))
	if err != nil {
		t.Fatalf("delivery.New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func wantStats(t testing.TB, got, want delivery.Stats) {
	t.Helper()
	if got != want {
		t.Fatalf("stats %+v, want %+v", got, want)
	}
}

func TestNewNeedsAnOutput(t *testing.T) {
	_, err := delivery.New(delivery.Config{StateFile: filepath.Join(t.TempDir(), "s.json")}, muxtest.Log(t))
	if err == nil {
		t.Fatal("New without server and file succeeded")
	}
}

// Events a sink sends again on a new session (a lost ack, a reconnect) are
// delivered once.
func TestDedupAcrossSessions(t *testing.T) {
	srv := startEventServer(t)
	state := filepath.Join(t.TempDir(), "events-state.json")
	svc := newService(t, delivery.Config{Server: srv.addr, StateFile: state})
	_, leaf := muxtest.StartPair(t, svc.Handle)

	s1 := openSession(t, leaf)
	s1.mustSend(batch("es-a", 1, 10))
	s1.mustSend(batch("es-a", 11, 20))
	s1.end()

	s2 := openSession(t, leaf)
	s2.mustSend(batch("es-a", 15, 30)) // 15..20 again
	s2.mustSend(batch("es-a", 1, 5))   // all again: acked, nothing written
	s2.end()

	wantLines(t, srv.waitLines(30), 1, 30)
	wantStats(t, svc.Stats(), delivery.Stats{Batches: 4, Delivered: 30, Duplicates: 11})
	dd, err := delivery.OpenDedup(state)
	if err != nil {
		t.Fatal(err)
	}
	if got := dd.Delivered("es-a"); got != 30 {
		t.Fatalf("state file: delivered up to %d, want 30", got)
	}
	if n := srv.acceptCount(); n != 1 {
		t.Fatalf("event server accepted %d connections, want 1", n)
	}
}

// A new Service on the same state file (an epproxy restart) still drops
// what the old one delivered.
func TestDedupAcrossRestart(t *testing.T) {
	srv := startEventServer(t)
	state := filepath.Join(t.TempDir(), "events-state.json")
	var cur atomic.Pointer[delivery.Service]
	_, leaf := muxtest.StartPair(t, func(ctx context.Context, c *mux.Conn) { cur.Load().Handle(ctx, c) })

	old, err := delivery.New(delivery.Config{Server: srv.addr, StateFile: state}, muxtest.Log(t))
	if err != nil {
		t.Fatal(err)
	}
	cur.Store(old)
	s1 := openSession(t, leaf)
	s1.mustSend(batch("es-a", 1, 10))
	s1.end()
	if err := old.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	svc := newService(t, delivery.Config{Server: srv.addr, StateFile: state})
	cur.Store(svc)
	s2 := openSession(t, leaf)
	s2.mustSend(batch("es-a", 1, 20)) // the sink lost the ack of 1..10
	s2.end()

	wantLines(t, srv.waitLines(20), 1, 20)
	wantStats(t, svc.Stats(), delivery.Stats{Batches: 1, Delivered: 10, Duplicates: 10})
}

// With the event server down, a batch is not acknowledged and the session
// is aborted; once the server is back, the batch sent again is delivered
// once.
func TestServerDownNoAck(t *testing.T) {
	srv := startEventServer(t)
	svc := newService(t, delivery.Config{Server: srv.addr})
	_, leaf := muxtest.StartPair(t, svc.Handle)

	s1 := openSession(t, leaf)
	s1.mustSend(batch("es-a", 1, 10))
	srv.waitLines(10)
	s1.end()

	srv.down()
	s2 := openSession(t, leaf)
	ack, err := s2.send(batch("es-a", 11, 20))
	mustAbort(t, ack, err)
	if st := svc.Stats(); st.Failures != 1 || st.Batches != 1 {
		t.Fatalf("stats %+v: want 1 failure, 1 batch", st)
	}

	// Still down: the sink tries again and fails again.
	s3 := openSession(t, leaf)
	ack, err = s3.send(batch("es-a", 11, 20))
	mustAbort(t, ack, err)

	srv.listen(srv.addr)
	s4 := openSession(t, leaf)
	s4.mustSend(batch("es-a", 11, 25))
	s4.end()
	wantLines(t, srv.waitLines(25), 1, 25)
	wantStats(t, svc.Stats(), delivery.Stats{Batches: 2, Delivered: 25, Failures: 2})
}

// The event server closes its connection between two batches: the next
// batch is written to a new connection, not into the one the server has
// left (where it would be lost although acknowledged).
func TestServerClosesBetweenBatches(t *testing.T) {
	srv := startEventServer(t)
	svc := newService(t, delivery.Config{Server: srv.addr})
	_, leaf := muxtest.StartPair(t, svc.Handle)

	s := openSession(t, leaf)
	const rounds = 20
	for i := uint64(0); i < rounds; i++ {
		s.mustSend(batch("es-a", i*10+1, i*10+10))
		srv.waitLines(int(i*10 + 10))
		srv.closeConns() // at once, as a server that restarts
	}
	s.end()
	wantLines(t, srv.got(), 1, rounds*10)
	if n := srv.acceptCount(); n != rounds {
		t.Fatalf("event server accepted %d connections, want %d", n, rounds)
	}
}

// Only a JSON lines file: one object per event, with the sink, sequence,
// source, framing, received time and the event.
func TestJSONFile(t *testing.T) {
	out := filepath.Join(t.TempDir(), "events.jsonl")
	svc := newService(t, delivery.Config{File: out})
	_, leaf := muxtest.StartPair(t, svc.Handle)

	recv := time.Date(2026, 1, 2, 3, 4, 5, 123000000, time.UTC)
	b := &events.Batch{Sink: "es-a", Events: []events.Event{
		{Seq: 7, Time: recv, Framing: events.EIF, Source: "10.1.2.3:5529", Data: []byte("TEC_Event;msg='x y';END")},
		{Seq: 8, Framing: events.Line, Source: "10.1.2.4:514", Data: []byte("<13>Jan  2 03:04:05 host app: \xff bad utf-8")},
	}}
	s := openSession(t, leaf)
	s.mustSend(b)
	s.mustSend(b) // again: dropped
	s.end()

	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type line struct {
		Sink     string     `json:"sink"`
		Seq      uint64     `json:"seq"`
		Source   string     `json:"source"`
		Framing  string     `json:"framing"`
		Received *time.Time `json:"received"`
		Event    string     `json:"event"`
	}
	var got []line
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l line
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got = append(got, l)
	}
	if len(got) != 2 {
		t.Fatalf("file has %d lines, want 2: %+v", len(got), got)
	}
	e0, e1 := got[0], got[1]
	if e0.Sink != "es-a" || e0.Seq != 7 || e0.Source != "10.1.2.3:5529" || e0.Framing != "eif" ||
		e0.Received == nil || !e0.Received.Equal(recv) || e0.Event != "TEC_Event;msg='x y';END" {
		t.Errorf("first line %+v", e0)
	}
	if e1.Sink != "es-a" || e1.Seq != 8 || e1.Framing != "line" || e1.Received != nil ||
		e1.Event != "<13>Jan  2 03:04:05 host app: \uFFFD bad utf-8" {
		t.Errorf("second line %+v", e1)
	}
	wantStats(t, svc.Stats(), delivery.Stats{Batches: 2, Delivered: 2, Duplicates: 2})
}

// Both outputs: every event goes to each.
func TestServerAndFile(t *testing.T) {
	srv := startEventServer(t)
	out := filepath.Join(t.TempDir(), "events.jsonl")
	svc := newService(t, delivery.Config{Server: srv.addr, File: out})
	_, leaf := muxtest.StartPair(t, svc.Handle)
	s := openSession(t, leaf)
	s.mustSend(batch("es-a", 1, 50))
	s.end()
	wantLines(t, srv.waitLines(50), 1, 50)
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "\n"); n != 50 {
		t.Fatalf("file has %d lines, want 50", n)
	}
}

// A batch that names another sink than the session's origin is refused:
// nothing delivered, no ack, session aborted, and the other sink's mark
// is untouched.
func TestSinkLabelMismatch(t *testing.T) {
	srv := startEventServer(t)
	state := filepath.Join(t.TempDir(), "events-state.json")
	svc := newService(t, delivery.Config{Server: srv.addr, StateFile: state})
	_, leaf := muxtest.StartPair(t, svc.Handle)

	s1 := openSession(t, leaf)
	ack, err := s1.send(batch("es-b", 1, 10))
	mustAbort(t, ack, err)
	wantStats(t, svc.Stats(), delivery.Stats{})

	// The right label goes through; es-b's events were never delivered.
	s2 := openSession(t, leaf)
	s2.mustSend(batch("es-a", 100, 101))
	s2.end()
	wantLines(t, srv.waitLines(2), 100, 101)
	dd, err := delivery.OpenDedup(state)
	if err != nil {
		t.Fatal(err)
	}
	if got := dd.Delivered("es-b"); got != 0 {
		t.Fatalf("es-b delivered up to %d, want 0", got)
	}
}

// Bytes that are not a batch end the session without an ack.
func TestGarbageClosesSession(t *testing.T) {
	srv := startEventServer(t)
	svc := newService(t, delivery.Config{Server: srv.addr})
	_, leaf := muxtest.StartPair(t, svc.Handle)
	s := openSession(t, leaf)
	if _, err := s.c.Write([]byte("GET / HTTP/1.0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	ack, err := events.ReadAck(s.c)
	mustAbort(t, ack, err)
	wantStats(t, svc.Stats(), delivery.Stats{})
	if n := len(srv.got()); n != 0 {
		t.Fatalf("event server got %d lines", n)
	}
}

// With both outputs, a batch written to the file while the event server is
// down reaches the server once it is back, and the file does not get it a
// second time: each output keeps its own mark.
func TestServerDownFileOnce(t *testing.T) {
	srv := startEventServer(t)
	out := filepath.Join(t.TempDir(), "events.jsonl")
	svc := newService(t, delivery.Config{Server: srv.addr, File: out})
	_, leaf := muxtest.StartPair(t, svc.Handle)

	srv.down()
	s1 := openSession(t, leaf)
	ack, err := s1.send(batch("es-a", 1, 10))
	mustAbort(t, ack, err)

	srv.listen(srv.addr)
	s2 := openSession(t, leaf)
	s2.mustSend(batch("es-a", 1, 10))
	s2.end()
	wantLines(t, srv.waitLines(10), 1, 10)
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "\n"); n != 10 {
		t.Fatalf("file has %d lines, want each of the 10 events once", n)
	}
}
