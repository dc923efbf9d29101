package sink_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/relaychain/relaychain/events"
	"github.com/relaychain/relaychain/eventsink/sink"
	"github.com/relaychain/relaychain/eventsink/spool"
	"github.com/relaychain/relaychain/internal/chain"
	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// TestMain fails the package when a goroutine is left once every test has
// run: sinks, nodes and test services must all be gone.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// received is one event as the event service on the root got it.
type received struct {
	sink    string
	framing events.Framing
	source  string
	data    string
}

func (r received) String() string {
	return fmt.Sprintf("%s %s from %s: %q", r.sink, r.framing, r.source, r.data)
}

// eventService is an in-process event service: it reads batches, records
// their events and acknowledges each batch.
type eventService struct {
	mu  sync.Mutex
	ev  []received
	up  uint64 // the last sequence number acknowledged
	err error  // the first failure of a session
}

func (s *eventService) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

func (s *eventService) handle(_ context.Context, c *mux.Conn) {
	defer c.Close()
	for {
		b, err := events.ReadBatch(c, events.Limits{})
		if errors.Is(err, io.EOF) {
			_ = c.CloseWrite()
			return
		}
		if err != nil {
			s.fail(fmt.Errorf("read batch: %w", err))
			return
		}
		s.mu.Lock()
		for _, e := range b.Events {
			s.ev = append(s.ev, received{b.Sink, e.Framing, e.Source, string(e.Data)})
		}
		s.up = b.LastSeq()
		s.mu.Unlock()
		if err := events.WriteAck(c, events.Ack{UpTo: b.LastSeq()}); err != nil {
			s.fail(fmt.Errorf("write ack: %w", err))
			return
		}
	}
}

func (s *eventService) got() ([]received, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.ev...), s.up, s.err
}

// sinkConfig is an eventsink configuration with label es-a (the leaf of
// muxtest.StartPair) sending to epp, with a TCP EIF listener "eif" and a
// UDP lines listener "syslog" on 127.0.0.1:0.
func sinkConfig(t testing.TB, spoolDir string) *chain.Config {
	t.Helper()
	cfg := chain.Default(chain.EventSink)
	cfg.Label = "es-a"
	cfg.ShutdownGrace = 2 * time.Second
	cfg.Tuning.ReconnectMin = 20 * time.Millisecond
	cfg.Tuning.ReconnectMax = 200 * time.Millisecond
	ev := chain.DefaultEvents()
	ev.Dest = "epp"
	ev.Spool.Dir = spoolDir
	ev.Spool.Fsync = "always"
	ev.Listeners = []chain.EventListener{
		{Name: "eif", Protocol: "tcp", Listen: "127.0.0.1:0", Framing: "eif", MaxConnsPerSource: 64, IdleTimeout: time.Minute},
		{Name: "syslog", Protocol: "udp", Listen: "127.0.0.1:0", Framing: "lines", MaxConnsPerSource: 64, IdleTimeout: time.Minute},
	}
	cfg.Events = &ev
	return cfg
}

// serve runs s.Serve until stop is called or the test ends. stop cancels
// Serve's context and returns its result, or an error if Serve does not
// return within 10s.
func serve(t testing.TB, s *sink.Sink) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	var (
		once sync.Once
		err  error
	)
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				err = errors.New("Serve did not return within 10s of the cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// An eventsink started in process takes events on its TCP and UDP
// listeners and they reach the event service on the root, byte for byte,
// with their framing and sender. When its context ends, Serve returns, the
// listeners' ports and the spool are free again, everything is
// acknowledged, and no goroutine of the sink is left.
func TestSinkForwardsAndStops(t *testing.T) {
	svc := &eventService{}
	root, leaf := muxtest.StartPair(t, svc.handle)
	before := goleak.IgnoreCurrent()
	dir := filepath.Join(t.TempDir(), "spool")

	s, err := sink.New(sinkConfig(t, dir), leaf, muxtest.Log(t))
	if err != nil {
		t.Fatalf("sink.New: %v", err)
	}
	tcpAddr, udpAddr := s.Addr("eif"), s.Addr("syslog")
	if tcpAddr == nil || udpAddr == nil || s.Addr("none") != nil {
		t.Fatalf("Addr: eif %v, syslog %v, none %v", tcpAddr, udpAddr, s.Addr("none"))
	}
	stop := serve(t, s)

	tc, err := net.Dial("tcp", tcpAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(tc, "TEC_Event;msg='a;b';END\nDisk_Full;host=h1;pct=97;END"); err != nil {
		t.Fatal(err)
	}
	tcpSrc := tc.LocalAddr().String()
	muxtest.WaitFor(t, 10*time.Second, "the TCP events at the root", func() bool {
		ev, _, _ := svc.got()
		return len(ev) >= 2
	})
	if err := tc.Close(); err != nil {
		t.Fatal(err)
	}
	uc, err := net.Dial("udp", udpAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	if _, err := io.WriteString(uc, "<13>Jan  2 03:04:05 host app: one\r\n<14>two \xff"); err != nil {
		t.Fatal(err)
	}
	udpSrc := uc.LocalAddr().String()
	muxtest.WaitFor(t, 10*time.Second, "the UDP events at the root", func() bool {
		ev, _, _ := svc.got()
		return len(ev) >= 4
	})

	got, upTo, err := svc.got()
	if err != nil {
		t.Fatalf("event service: %v", err)
	}
	want := []received{
		{"es-a", events.EIF, tcpSrc, "TEC_Event;msg='a;b';END"},
		{"es-a", events.EIF, tcpSrc, "Disk_Full;host=h1;pct=97;END"},
		{"es-a", events.Line, udpSrc, "<13>Jan  2 03:04:05 host app: one"},
		{"es-a", events.Line, udpSrc, "<14>two \xff"},
	}
	if len(got) != len(want) {
		t.Fatalf("the root got %d events, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("event %d: got %v, want %v", i, got[i], want[i])
		}
	}
	// The forwarder ends its session once everything is acknowledged.
	muxtest.WaitFor(t, 10*time.Second, "no session on either node", func() bool {
		return root.Sessions() == 0 && leaf.Sessions() == 0
	})

	if err := stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	ln, err := net.Listen("tcp", tcpAddr.String())
	if err != nil {
		t.Fatalf("the TCP listener's port is still taken: %v", err)
	}
	ln.Close()
	pc, err := net.ListenPacket("udp", udpAddr.String())
	if err != nil {
		t.Fatalf("the UDP listener's port is still taken: %v", err)
	}
	pc.Close()
	// The spool's lock is free: it opens again, with everything acknowledged.
	sp, err := spool.Open(dir, spool.Options{})
	if err != nil {
		t.Fatalf("reopen the spool: %v", err)
	}
	st := sp.Stats()
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	if st.Acked != upTo || st.NextSeq-1 != upTo {
		t.Fatalf("spool after stop: acked %d, last %d; the root acknowledged up to %d", st.Acked, st.NextSeq-1, upTo)
	}
	goleak.VerifyNone(t, before)
}

// New fails on a listener it cannot open, and leaves nothing open: the
// spool can be opened again.
func TestNewClosesOnError(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := filepath.Join(t.TempDir(), "spool")
	cfg := sinkConfig(t, dir)
	cfg.Events.Listeners[1] = chain.EventListener{Name: "busy", Protocol: "tcp", Listen: taken.Addr().String(), Framing: "lines"}
	if _, err := sink.New(cfg, nil, muxtest.Log(t)); err == nil {
		t.Fatal("sink.New succeeded on a port in use")
	}
	sp, err := spool.Open(dir, spool.Options{})
	if err != nil {
		t.Fatalf("the spool is still held after New failed: %v", err)
	}
	sp.Close()
}
