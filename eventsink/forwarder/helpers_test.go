package forwarder_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/relaychain/relaychain/epproxy/delivery"
	"github.com/relaychain/relaychain/events"
	"github.com/relaychain/relaychain/eventsink/forwarder"
	"github.com/relaychain/relaychain/eventsink/spool"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// TestMain fails the package when a goroutine is left once every test has
// run: forwarders, nodes, spools and test servers must all be gone.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// openSpool opens a spool in a new directory and closes it when the test
// ends.
func openSpool(t testing.TB) *spool.Spool {
	t.Helper()
	sp, err := spool.Open(filepath.Join(t.TempDir(), "spool"), spool.Options{
		SegmentSize: 64 << 10, MaxBytes: 64 << 20, Sync: spool.Interval(20 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp
}

// eventData is the text of the i-th test event.
func eventData(i int) string { return fmt.Sprintf("event-%06d", i) }

// appendEvents appends line events from..to-1 to sp.
func appendEvents(t testing.TB, sp *spool.Spool, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if _, err := sp.Append(events.Line, "10.0.0.1:514", []byte(eventData(i))); err != nil {
			t.Errorf("append %d: %v", i, err)
			return
		}
	}
}

// checkEvents checks that got is events 0..n-1, each once, in order, and
// reports lost and repeated events separately.
func checkEvents(t testing.TB, got []string, n int) {
	t.Helper()
	seen := map[string]int{}
	var repeated, misordered []string
	next := 0
	for _, g := range got {
		seen[g]++
		if seen[g] > 1 {
			repeated = append(repeated, g)
			continue
		}
		if g != eventData(next) {
			misordered = append(misordered, g)
		}
		next++
	}
	var lost []string
	for i := 0; i < n; i++ {
		if seen[eventData(i)] == 0 {
			lost = append(lost, eventData(i))
		}
	}
	if len(lost)+len(repeated)+len(misordered) > 0 || len(got) != n {
		t.Fatalf("%d events delivered, want %d: lost %d %s; repeated %d %s; out of order %d %s",
			len(got), n, len(lost), head(lost), len(repeated), head(repeated), len(misordered), head(misordered))
	}
}

func head(s []string) []string {
	if len(s) > 5 {
		return s[:5]
	}
	return s
}

// runForwarder runs f until the test ends (or stop is called) and checks
// that Run returned nil.
func runForwarder(t testing.TB, f *forwarder.Forwarder) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("Run did not return within 5s of the cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// lineServer is a stand-in for the event server: it records the lines it
// reads.
type lineServer struct {
	ln    net.Listener
	mu    sync.Mutex
	lines []string
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func startLineServer(t testing.TB) *lineServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &lineServer{ln: ln, conns: map[net.Conn]bool{}}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *lineServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			sc := bufio.NewScanner(c)
			for sc.Scan() {
				s.mu.Lock()
				s.lines = append(s.lines, sc.Text())
				s.mu.Unlock()
			}
		}()
	}
}

func (s *lineServer) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

// newDelivery returns the epproxy's event service writing to srv.
func newDelivery(t testing.TB, srv *lineServer) *delivery.Service {
	t.Helper()
	svc, err := delivery.New(delivery.Config{Server: srv.ln.Addr().String(),
		StateFile: filepath.Join(t.TempDir(), "events-state.json"), WriteTimeout: 2 * time.Second}, muxtest.Log(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc
}
