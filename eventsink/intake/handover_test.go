package intake

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/events"
	"github.com/relaychain/relaychain/eventsink/framing"
)

// store is a Handler that keeps every event, for checks of what arrived.
type store struct {
	mu   sync.Mutex
	evs  []string
	gate chan struct{} // when not nil, the first event waits for it
	held chan struct{} // closed once the first event waits
}

func (s *store) handle(_ events.Framing, _ string, data []byte) error {
	s.mu.Lock()
	first := len(s.evs) == 0
	s.evs = append(s.evs, string(data))
	s.mu.Unlock()
	if first && s.gate != nil {
		close(s.held)
		<-s.gate
	}
	return nil
}

func (s *store) events() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.evs...)
}

func (s *store) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.evs)
}

func quietLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// serve runs srv until the test ends.
func serve(t *testing.T, srv *Server) {
	t.Helper()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
}

// TestShutdownReadsWhatWasSent: events a sender wrote before the
// shutdown, still in the kernel's buffer when it begins, are stored, not
// dropped with the connection.
func TestShutdownReadsWhatWasSent(t *testing.T) {
	st := &store{gate: make(chan struct{}), held: make(chan struct{})}
	srv, err := New(Config{Network: "tcp", Addr: "127.0.0.1:0", Framing: events.Line, Handler: st.handle, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, srv)
	c := dial(t, srv)
	send(t, c, "first\n")
	<-st.held // the server reads nothing more until the gate opens
	const n = 2000
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "event %d\n", i)
	}
	send(t, c, b.String())
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()
	waitFor(t, "the shutdown to begin", srv.draining.Load)
	close(st.gate)
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if got := st.count(); got != n+1 {
		t.Fatalf("%d events stored of the %d sent before the shutdown", got, n+1)
	}
	expectClosed(t, c)
}

// handOver hands srv over as an eventsink does to its successor: a new
// server on a copy of the listening socket, the connections passed as
// files, their states through JSON.
func handOver(t *testing.T, srv *Server, cfg Config) *Server {
	t.Helper()
	var f *os.File
	var err error
	switch {
	case srv.ln != nil:
		f, err = srv.ln.(*net.TCPListener).File()
	default:
		f, err = srv.pc.(*net.UDPConn).File()
	}
	if err != nil {
		t.Fatal(err)
	}
	if srv.ln != nil {
		cfg.Listener, err = net.FileListener(f)
	} else {
		cfg.PacketConn, err = net.FilePacketConn(f)
	}
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	next, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	handed, err := srv.HandOver(ctx)
	if err != nil {
		t.Fatalf("HandOver: %v", err)
	}
	for _, h := range handed {
		cf, err := h.Conn.File()
		h.Conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.FileConn(cf)
		cf.Close()
		if err != nil {
			t.Fatal(err)
		}
		enc, _ := json.Marshal(h.State)
		var st framing.State
		if err := json.Unmarshal(enc, &st); err != nil {
			t.Fatal(err)
		}
		if err := next.Resume(c, st); err != nil {
			t.Fatalf("Resume: %v", err)
		}
	}
	return next
}

// TestHandOverLosesNothing hands a TCP listener over while a sender
// writes, with half an event sent when it happens: every event arrives
// once and in order, the first part at the old server and the rest at the
// new one, which also takes new connections.
func TestHandOverLosesNothing(t *testing.T) {
	for _, f := range []events.Framing{events.Line, events.EIF} {
		t.Run(f.String(), func(t *testing.T) {
			ev := func(i int) string {
				if f == events.EIF {
					return fmt.Sprintf("Cls;n=%d;END\n", i)
				}
				return fmt.Sprintf("event %d\n", i)
			}
			trim := func(s string) string { return strings.TrimSuffix(s, "\n") }
			before, after := &store{}, &store{}
			cfg := Config{Network: "tcp", Addr: "127.0.0.1:0", Framing: f, Handler: before.handle, Log: quietLog()}
			old, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			serve(t, old)
			c := dial(t, old)
			const n = 1000
			for i := range n / 2 {
				send(t, c, ev(i))
			}
			half := ev(n / 2)
			send(t, c, half[:len(half)/2])
			waitFor(t, "the first half", func() bool { return before.count() == n/2 })
			time.Sleep(20 * time.Millisecond) // the half event is read too
			cfg.Handler = after.handle
			next := handOver(t, old, cfg)
			if len(after.events()) != 0 || before.count() != n/2 {
				t.Fatalf("events stored during the handover: %d before, %d after", before.count(), after.count())
			}
			send(t, c, half[len(half)/2:])
			for i := n/2 + 1; i < n; i++ {
				send(t, c, ev(i))
			}
			serve(t, next)
			waitFor(t, "the second half", func() bool { return after.count() == n/2 })
			c2 := dial(t, next)
			send(t, c2, ev(n))
			waitFor(t, "every event", func() bool { return after.count() == n/2+1 })
			got := append(before.events(), after.events()...)
			for i := range n + 1 {
				if got[i] != trim(ev(i)) {
					t.Fatalf("event %d is %q, want %q", i, got[i], trim(ev(i)))
				}
			}
			if st := old.Stats(); st.Active != 0 {
				t.Errorf("the old server still holds %d connections", st.Active)
			}
		})
	}
}

// TestHandOverUDP: datagrams sent while the socket is handed over wait
// for the new server.
func TestHandOverUDP(t *testing.T) {
	before, after := &store{}, &store{}
	cfg := Config{Network: "udp", Addr: "127.0.0.1:0", Framing: events.Line, Handler: before.handle, Log: quietLog()}
	old, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, old)
	c := dial(t, old)
	send(t, c, "one\n")
	waitFor(t, "the first datagram", func() bool { return before.count() == 1 })
	cfg.Handler = after.handle
	next := handOver(t, old, cfg)
	send(t, c, "two\n")
	time.Sleep(20 * time.Millisecond)
	if after.count() != 0 || before.count() != 1 {
		t.Fatalf("a datagram was read between the servers: %d before, %d after", before.count(), after.count())
	}
	serve(t, next)
	waitFor(t, "the datagram sent during the handover", func() bool { return after.count() == 1 })
	if got := after.events(); got[0] != "two" {
		t.Fatalf("got %q", got)
	}
}

// TestUDPReadBuffer: a UDP listener asks for a receive buffer of
// DefaultReadBuffer, as far as the kernel allows (net.core.rmem_max; the
// kernel reports twice what it grants).
func TestUDPReadBuffer(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		t.Skipf("the kernel's cap is not readable here: %v", err)
	}
	var rmemMax int
	if _, err := fmt.Sscan(string(b), &rmemMax); err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Network: "udp", Addr: "127.0.0.1:0", Framing: events.Line, Handler: (&store{}).handle, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	rc, err := srv.pc.(*net.UDPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	_ = rc.Control(func(fd uintptr) { got, err = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF) })
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 * min(DefaultReadBuffer, rmemMax); got != want {
		t.Errorf("receive buffer %d bytes, want %d (rmem_max %d)", got, want, rmemMax)
	}
}
