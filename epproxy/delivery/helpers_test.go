package delivery_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/relaychain/relaychain/events"
	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// TestMain fails the package when a goroutine is left once every test has
// run: the Service's event server watcher, the nodes and the test servers
// must all be gone.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// eventServer is a stand-in for the event server: it accepts connections
// and records every line it reads, in order. It can drop its connections
// and stop listening, and listen again on the same address.
type eventServer struct {
	t    testing.TB
	addr string

	mu      sync.Mutex
	ln      net.Listener
	conns   map[net.Conn]bool
	lines   []string
	accepts int
	wg      sync.WaitGroup
}

func startEventServer(t testing.TB) *eventServer {
	t.Helper()
	s := &eventServer{t: t, conns: map[net.Conn]bool{}}
	s.listen("127.0.0.1:0")
	t.Cleanup(s.stop)
	return s
}

// listen (re)starts the listener on addr.
func (s *eventServer) listen(addr string) {
	s.t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 100; i++ { // the old socket may linger for a moment
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("event server: %v", err)
	}
	s.mu.Lock()
	s.ln, s.addr = ln, ln.Addr().String()
	s.mu.Unlock()
	s.wg.Add(1)
	go s.accept(ln)
}

func (s *eventServer) accept(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.accepts++
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go s.read(c)
	}
}

func (s *eventServer) read(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		s.mu.Lock()
		s.lines = append(s.lines, sc.Text())
		s.mu.Unlock()
	}
}

// dropConns closes every accepted connection after reading what it holds,
// and waits until their readers ended.
func (s *eventServer) dropConns() {
	s.mu.Lock()
	for c := range s.conns {
		_ = c.(*net.TCPConn).CloseWrite()
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	}
	s.mu.Unlock()
	muxtest.WaitFor(s.t, 5*time.Second, "the event server's connections to end", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.conns) == 0
	})
}

// closeConns closes every accepted connection at once and waits until
// their readers ended.
func (s *eventServer) closeConns() {
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	muxtest.WaitFor(s.t, 5*time.Second, "the event server's connections to end", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.conns) == 0
	})
}

// down stops listening and drops the connections.
func (s *eventServer) down() {
	s.mu.Lock()
	ln := s.ln
	s.ln = nil
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	s.dropConns()
}

func (s *eventServer) stop() {
	s.down()
	s.wg.Wait()
}

func (s *eventServer) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

func (s *eventServer) acceptCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepts
}

// waitLines waits until the server has at least n lines.
func (s *eventServer) waitLines(n int) []string {
	s.t.Helper()
	muxtest.WaitFor(s.t, 10*time.Second, fmt.Sprintf("%d lines at the event server", n), func() bool {
		return len(s.got()) >= n
	})
	return s.got()
}

// lineEvent is the data of line event seq.
func lineEvent(seq uint64) string { return fmt.Sprintf("event-%d", seq) }

// batch returns a batch of sink with line events from..to.
func batch(sink string, from, to uint64) *events.Batch {
	b := &events.Batch{Sink: sink}
	for s := from; s <= to; s++ {
		b.Events = append(b.Events, events.Event{Seq: s, Time: time.Unix(1700000000, int64(s)), Framing: events.Line,
			Source: "10.0.0.1:514", Data: []byte(lineEvent(s))})
	}
	return b
}

// sampleBatch returns a batch with both framings.
func sampleBatch(t *testing.T) *events.Batch {
	t.Helper()
	return &events.Batch{Sink: "es-dmz1", Events: []events.Event{
		{Seq: 7, Time: time.Unix(1700000000, 123), Framing: events.EIF, Source: "10.1.2.3:5140", Data: []byte("TEC_Event;msg='a;b';END")},
		{Seq: 9, Framing: events.Line, Source: "[2001:db8::1]:514", Data: []byte("<13>Jan  1 00:00:00 host app: hello")},
	}}
}

// wantLines checks that lines are the events from..to, in order.
func wantLines(t testing.TB, lines []string, from, to uint64) {
	t.Helper()
	var want []string
	for s := from; s <= to; s++ {
		want = append(want, lineEvent(s))
	}
	if fmt.Sprint(lines) != fmt.Sprint(want) {
		t.Fatalf("event server got %d lines %q\nwant %d lines %q", len(lines), lines, len(want), want)
	}
}

// session is the sink's end of one event session, spoken by hand.
type session struct {
	t testing.TB
	c *mux.Conn
}

func openSession(t testing.TB, leaf *mux.Node) *session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := leaf.Open(ctx, "epp", "events")
	if err != nil {
		t.Fatalf("open event session: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &session{t: t, c: c}
}

// send sends b and returns the ack, or the error reading it.
func (s *session) send(b *events.Batch) (events.Ack, error) {
	s.t.Helper()
	if err := events.WriteBatch(s.c, b, events.Limits{}); err != nil {
		return events.Ack{}, err
	}
	return events.ReadAck(s.c)
}

// mustSend sends b and checks that it is acknowledged up to its last seq.
func (s *session) mustSend(b *events.Batch) {
	s.t.Helper()
	ack, err := s.send(b)
	if err != nil {
		s.t.Fatalf("batch %d..%d: %v", b.Events[0].Seq, b.LastSeq(), err)
	}
	if ack.UpTo != b.LastSeq() {
		s.t.Fatalf("batch %d..%d acked up to %d", b.Events[0].Seq, b.LastSeq(), ack.UpTo)
	}
}

// end half-closes and checks that the service ends the session cleanly.
func (s *session) end() {
	s.t.Helper()
	if err := s.c.CloseWrite(); err != nil {
		s.t.Fatalf("close write: %v", err)
	}
	var one [1]byte
	if n, err := s.c.Read(one[:]); n != 0 || !errors.Is(err, io.EOF) {
		s.t.Fatalf("after the half-close: read %d bytes, %v; want a clean end", n, err)
	}
	s.c.Close()
}

// mustAbort checks that the session was aborted by the service: reading the
// ack fails with mux.ErrAborted.
func mustAbort(t testing.TB, ack events.Ack, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got an ack up to %d; want the session aborted without an ack", ack.UpTo)
	}
	if !errors.Is(err, mux.ErrAborted) {
		t.Fatalf("got %v; want the session aborted (mux.ErrAborted)", err)
	}
}
