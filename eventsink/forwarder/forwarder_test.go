package forwarder_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relaychain/relaychain/epproxy/delivery"
	"github.com/relaychain/relaychain/events"
	"github.com/relaychain/relaychain/eventsink/forwarder"
	"github.com/relaychain/relaychain/eventsink/spool"
	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

var errTestFault = errors.New("test fault")

// Every event reaches the event server once, in order, in batches of at
// most BatchCount; the spool is acknowledged up to the last event and its
// segments are deleted.
func TestForwardBatchesAcked(t *testing.T) {
	srv := startLineServer(t)
	svc := newDelivery(t, srv)
	_, leaf := muxtest.StartPair(t, svc.Handle)
	sp := openSpool(t)
	const n = 2000
	appendEvents(t, sp, 0, n)
	last := sp.Stats().NextSeq - 1

	f := forwarder.New(leaf, sp, forwarder.Config{Sink: "es-a", Dest: "epp", Service: "events", BatchCount: 100}, muxtest.Log(t))
	runForwarder(t, f)
	muxtest.WaitFor(t, 20*time.Second, "the spool to be acknowledged", func() bool { return sp.Stats().Acked == last })
	checkEvents(t, srv.got(), n)
	if st := f.Stats(); st.Batches != n/100 || st.Events != n || st.Failures != 0 {
		t.Fatalf("forwarder stats %+v: want %d batches, %d events, no failure", st, n/100, n)
	}
	if st := svc.Stats(); st.Batches != n/100 || st.Delivered != n || st.Duplicates != 0 {
		t.Fatalf("delivery stats %+v", st)
	}
	if st := sp.Stats(); st.Segments != 0 || st.Bytes != 0 {
		t.Fatalf("spool keeps %d segments, %d bytes after everything was acknowledged", st.Segments, st.Bytes)
	}
}

// Once everything is acknowledged the forwarder ends its session (a clean
// half-close): an idle eventsink holds no session on any node. New events
// open a new one.
func TestIdleHoldsNoSession(t *testing.T) {
	srv := startLineServer(t)
	svc := newDelivery(t, srv)
	root, leaf := muxtest.StartPair(t, svc.Handle)
	sp := openSpool(t)
	f := forwarder.New(leaf, sp, forwarder.Config{Sink: "es-a", Dest: "epp", Service: "events"}, muxtest.Log(t))
	runForwarder(t, f)

	idle := func() bool { return root.Sessions() == 0 && leaf.Sessions() == 0 }
	for round := 1; round <= 3; round++ {
		appendEvents(t, sp, (round-1)*10, round*10)
		muxtest.WaitFor(t, 10*time.Second, "the events to arrive", func() bool { return len(srv.got()) == round*10 })
		muxtest.WaitFor(t, 10*time.Second, "no session on either node", idle)
		if st := f.Stats(); st.Sessions != uint64(round) || st.Failures != 0 {
			t.Fatalf("round %d: forwarder stats %+v: want %d sessions, no failure", round, st, round)
		}
	}
	checkEvents(t, srv.got(), 30)
}

// fault is what a scripted event service does wrong in one session.
type fault struct {
	kind  int
	after int // batches acknowledged first
}

const (
	faultNone          = iota
	faultCutHeader     // abort after 3 bytes of a batch
	faultBeforeDeliver // read a whole batch, abort without delivering it
	faultAfterDeliver  // deliver and commit a batch, abort without the ack
	faultWrongAck      // deliver a batch, acknowledge less than it
	faultNoAck         // read a batch, never answer
)

// scripted is an event service that speaks the protocol by hand, with a
// real Dedup, and misbehaves in the sessions its script names.
type scripted struct {
	t      testing.TB
	dd     *delivery.Dedup
	script map[int32]fault // by session number, from 1

	sessions atomic.Int32
	mu       sync.Mutex
	got      []string
}

func newScripted(t testing.TB, script map[int32]fault) *scripted {
	dd, err := delivery.OpenDedup(filepath.Join(t.TempDir(), "dedup.json"))
	if err != nil {
		t.Fatal(err)
	}
	return &scripted{t: t, dd: dd, script: script}
}

func (s *scripted) record(_ string, evs []events.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range evs {
		s.got = append(s.got, string(e.Data))
	}
	return nil
}

func (s *scripted) delivered() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

func (s *scripted) handle(ctx context.Context, c *mux.Conn) {
	defer c.Close()
	f := s.script[s.sessions.Add(1)]
	for acked := 0; ; acked++ {
		due := f.kind != faultNone && acked == f.after
		if due && f.kind == faultCutHeader {
			var h [3]byte
			_, _ = io.ReadFull(c, h[:])
			c.Abort(errTestFault)
			return
		}
		b, err := events.ReadBatch(c, events.Limits{})
		if errors.Is(err, io.EOF) {
			_ = c.CloseWrite()
			return
		}
		if err != nil {
			return
		}
		if b.Sink != c.Header().Origin {
			s.t.Errorf("batch of %s on a session from %s", b.Sink, c.Header().Origin)
			return
		}
		if due {
			switch f.kind {
			case faultBeforeDeliver:
				c.Abort(errTestFault)
				return
			case faultAfterDeliver:
				_, _ = s.dd.Process(b, s.record)
				c.Abort(errTestFault)
				return
			case faultWrongAck:
				_, _ = s.dd.Process(b, s.record)
				_ = events.WriteAck(c, events.Ack{UpTo: b.LastSeq() - 1})
				_, _ = io.Copy(io.Discard, c) // until the sink gives up
				return
			case faultNoAck:
				_, _ = io.Copy(io.Discard, c) // until the sink gives up or ctx ends
				return
			}
		}
		ack, err := s.dd.Process(b, s.record)
		if err != nil {
			s.t.Errorf("process: %v", err)
			return
		}
		if err := events.WriteAck(c, ack); err != nil {
			return
		}
	}
}

// After a session is aborted (mid-batch, after delivery but before the
// ack, with a wrong ack), the forwarder sends again everything not
// acknowledged: with the receiver's deduplication, nothing is lost,
// repeated or reordered, while events keep being appended.
func TestResendAfterAbort(t *testing.T) {
	svc := newScripted(t, map[int32]fault{
		1: {kind: faultAfterDeliver, after: 2},
		2: {kind: faultCutHeader},
		3: {kind: faultBeforeDeliver, after: 1},
		4: {kind: faultWrongAck, after: 3},
		5: {kind: faultAfterDeliver},
	})
	_, leaf := muxtest.StartPair(t, svc.handle)
	sp := openSpool(t)
	const n = 5000
	appendEvents(t, sp, 0, 1000)
	f := forwarder.New(leaf, sp, forwarder.Config{Sink: "es-a", Dest: "epp", Service: "events",
		BatchCount: 50, RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond}, muxtest.Log(t))
	runForwarder(t, f)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // events keep coming while sessions fail
		defer wg.Done()
		for i := 1000; i < n; i += 100 {
			appendEvents(t, sp, i, i+100)
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Wait()
	last := sp.Stats().NextSeq - 1
	muxtest.WaitFor(t, 30*time.Second, "the spool to be acknowledged", func() bool { return sp.Stats().Acked == last })
	checkEvents(t, svc.delivered(), n)
	if st := f.Stats(); st.Failures != 5 || st.Events < n {
		t.Fatalf("forwarder stats %+v: want 5 failures and at least %d events acknowledged", st, n)
	}
}

// A batch whose ack does not come within AckTimeout is sent again on a new
// session.
func TestAckTimeout(t *testing.T) {
	svc := newScripted(t, map[int32]fault{1: {kind: faultNoAck, after: 1}})
	_, leaf := muxtest.StartPair(t, svc.handle)
	sp := openSpool(t)
	appendEvents(t, sp, 0, 300)
	f := forwarder.New(leaf, sp, forwarder.Config{Sink: "es-a", Dest: "epp", Service: "events",
		BatchCount: 100, AckTimeout: 300 * time.Millisecond, RetryMin: 10 * time.Millisecond}, muxtest.Log(t))
	runForwarder(t, f)
	last := sp.Stats().NextSeq - 1
	muxtest.WaitFor(t, 10*time.Second, "the spool to be acknowledged", func() bool { return sp.Stats().Acked == last })
	checkEvents(t, svc.delivered(), 300)
	if st := f.Stats(); st.Failures != 1 || st.Sessions != 2 {
		t.Fatalf("forwarder stats %+v: want 1 failure, 2 sessions", st)
	}
}

// openerFunc is a fake Opener.
type openerFunc func(ctx context.Context, dest, service string) (*mux.Conn, error)

func (f openerFunc) Open(ctx context.Context, dest, service string) (*mux.Conn, error) {
	return f(ctx, dest, service)
}

// Run returns nil promptly when its context ends, whatever it is doing.
func TestRunReturnsOnCancel(t *testing.T) {
	refuse := openerFunc(func(context.Context, string, string) (*mux.Conn, error) {
		return nil, &mux.StatusError{Code: mux.StatusNoRoute, Node: "es-a", Reason: "test"}
	})
	var openCalls atomic.Int32
	block := openerFunc(func(ctx context.Context, _, _ string) (*mux.Conn, error) {
		openCalls.Add(1)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	cases := []struct {
		name  string
		setup func(t *testing.T, sp *spool.Spool) (forwarder.Opener, func(*forwarder.Forwarder) bool)
	}{
		{"idle", func(t *testing.T, sp *spool.Spool) (forwarder.Opener, func(*forwarder.Forwarder) bool) {
			return refuse, func(*forwarder.Forwarder) bool { return true }
		}},
		{"backoff", func(t *testing.T, sp *spool.Spool) (forwarder.Opener, func(*forwarder.Forwarder) bool) {
			appendEvents(t, sp, 0, 1)
			return refuse, func(f *forwarder.Forwarder) bool { return f.Stats().Failures == 1 }
		}},
		{"opening", func(t *testing.T, sp *spool.Spool) (forwarder.Opener, func(*forwarder.Forwarder) bool) {
			appendEvents(t, sp, 0, 1)
			return block, func(*forwarder.Forwarder) bool { return openCalls.Load() > 0 }
		}},
		{"waiting for the ack", func(t *testing.T, sp *spool.Spool) (forwarder.Opener, func(*forwarder.Forwarder) bool) {
			svc := newScripted(t, map[int32]fault{1: {kind: faultNoAck}})
			root, leaf := muxtest.StartPair(t, svc.handle)
			appendEvents(t, sp, 0, 10)
			return leaf, func(f *forwarder.Forwarder) bool { return f.Stats().Sessions == 1 && root.Sessions() == 1 }
		}},
	}
	// The cancel comes as the session opens, before the forwarder set its
	// ack deadline: that deadline must not undo the cancel's.
	for i := range 20 {
		cases = append(cases, struct {
			name  string
			setup func(t *testing.T, sp *spool.Spool) (forwarder.Opener, func(*forwarder.Forwarder) bool)
		}{fmt.Sprintf("cancelled as the session opens/%d", i), func(t *testing.T, sp *spool.Spool) (forwarder.Opener, func(*forwarder.Forwarder) bool) {
			svc := newScripted(t, map[int32]fault{1: {kind: faultNoAck}})
			_, leaf := muxtest.StartPair(t, svc.handle)
			appendEvents(t, sp, 0, 10)
			var opened atomic.Bool
			return openerFunc(func(ctx context.Context, dest, service string) (*mux.Conn, error) {
				c, err := leaf.Open(ctx, dest, service)
				opened.Store(true)
				for ctx.Err() == nil { // wait for the test's cancel
					time.Sleep(time.Millisecond)
				}
				return c, err
			}), func(*forwarder.Forwarder) bool { return opened.Load() }
		}})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sp := openSpool(t)
			open, ready := tc.setup(t, sp)
			f := forwarder.New(open, sp, forwarder.Config{Sink: "es-a", Dest: "epp", Service: "events",
				AckTimeout: time.Minute, RetryMin: time.Minute, RetryMax: time.Minute}, muxtest.Log(t))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- f.Run(ctx) }()
			muxtest.WaitFor(t, 10*time.Second, "the forwarder to get there", func() bool { return ready(f) })
			start := time.Now()
			cancel()
			// A cancel that is missed waits for the ack timeout or the
			// retry delay, a minute; 10s is far from that and leaves room
			// for a loaded machine under -race.
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Run returned %v, want nil", err)
				}
				if d := time.Since(start); d > 10*time.Second {
					t.Fatalf("Run took %s to return after the cancel", d)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("Run did not return within 20s of the cancel")
			}
		})
	}
}

// A closed spool ends Run with spool.ErrClosed.
func TestRunReturnsSpoolClosed(t *testing.T) {
	sp := openSpool(t)
	f := forwarder.New(openerFunc(func(context.Context, string, string) (*mux.Conn, error) {
		return nil, errTestFault
	}), sp, forwarder.Config{Sink: "es-a", Dest: "epp", Service: "events"}, muxtest.Log(t))
	done := make(chan error, 1)
	go func() { done <- f.Run(context.Background()) }()
	sp.Close()
	select {
	case err := <-done:
		if !errors.Is(err, spool.ErrClosed) {
			t.Fatalf("Run returned %v, want spool.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s of the spool's close")
	}
}
