package intake

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"go.uber.org/goleak"

	"github.com/relaychain/relaychain/events"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitLimit = 10 * time.Second

// event is what the handler received.
type event struct {
	framing events.Framing
	source  string
	data    string
}

// recorder is a Handler that records events, and fails or panics on demand.
type recorder struct {
	ch   chan event
	fail atomic.Bool
	boom atomic.Bool
}

func newRecorder() *recorder { return &recorder{ch: make(chan event, 1000)} }

func (r *recorder) handle(f events.Framing, src string, data []byte) error {
	if r.boom.Load() {
		panic("handler exploded")
	}
	if r.fail.Load() {
		return errors.New("spool full")
	}
	r.ch <- event{f, src, string(data)}
	return nil
}

// next returns the next recorded event.
func (r *recorder) next(t *testing.T) event {
	t.Helper()
	select {
	case e := <-r.ch:
		return e
	case <-time.After(waitLimit):
		t.Fatal("no event received")
	}
	return event{}
}

// logCapture keeps log entries and writes them to t.Log until the test ends.
type logCapture struct {
	mu      sync.Mutex
	entries []*logrus.Entry
	t       *testing.T
	stopped atomic.Bool
}

func (h *logCapture) Levels() []logrus.Level { return logrus.AllLevels }

func (h *logCapture) Fire(e *logrus.Entry) error {
	h.mu.Lock()
	h.entries = append(h.entries, e)
	h.mu.Unlock()
	if !h.stopped.Load() {
		h.t.Logf("%s: %s", e.Level, e.Message)
	}
	return nil
}

// errorNaming reports whether an Error entry mentions s.
func (h *logCapture) errorNaming(s string) bool { return h.naming(logrus.ErrorLevel, s) }

// naming reports whether an entry of level mentions s.
func (h *logCapture) naming(level logrus.Level, s string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.entries {
		if e.Level == level && strings.Contains(e.Message, s) {
			return true
		}
	}
	return false
}

// start starts a server with cfg (Handler and Log filled in) and shuts it
// down when the test ends.
func start(t *testing.T, cfg Config, rec *recorder) (*Server, *logCapture) {
	t.Helper()
	l := logrus.New()
	l.SetOutput(io.Discard)
	l.SetLevel(logrus.DebugLevel)
	logs := &logCapture{t: t}
	l.AddHook(logs)
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	cfg.Handler = rec.handle
	cfg.Log = logrus.NewEntry(l)
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		logs.stopped.Store(true)
	})
	return srv, logs
}

// dial connects to srv and closes the connection when the test ends.
func dial(t *testing.T, srv *Server) net.Conn {
	t.Helper()
	c, err := net.DialTimeout(srv.Addr().Network(), srv.Addr().String(), waitLimit)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func send(t *testing.T, c net.Conn, s string) {
	t.Helper()
	c.SetWriteDeadline(time.Now().Add(waitLimit))
	if _, err := c.Write([]byte(s)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// expectClosed checks the server closes c: a read ends with EOF or a reset.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitLimit))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("connection not closed by the server")
	}
}

// waitFor waits until cond holds, checking every millisecond.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(waitLimit)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestTCPFramings(t *testing.T) {
	tests := []struct {
		name string
		f    events.Framing
		in   string
		want []string
	}{
		{"eif", events.EIF, "TEC_Event;msg='a;b';END\nB;y=2;END", []string{"TEC_Event;msg='a;b';END", "B;y=2;END"}},
		{"lines", events.Line, "<13>Jan  1 00:00:00 h app: one\r\ntwo\n", []string{"<13>Jan  1 00:00:00 h app: one", "two"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder()
			srv, _ := start(t, Config{Network: "tcp", Framing: tt.f}, rec)
			c := dial(t, srv)
			send(t, c, tt.in)
			for _, w := range tt.want {
				e := rec.next(t)
				if e.data != w || e.framing != tt.f || e.source != c.LocalAddr().String() {
					t.Fatalf("got %+v, want %q from %s", e, w, c.LocalAddr())
				}
			}
			waitFor(t, "the events to be counted", func() bool { return srv.Stats().Events == uint64(len(tt.want)) })
			if st := srv.Stats(); st.Accepted != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestUDPFramings(t *testing.T) {
	tests := []struct {
		name string
		f    events.Framing
		in   string
		want []string
	}{
		{"eif", events.EIF, "A;x=1;END\nB;END\x00", []string{"A;x=1;END", "B;END"}},
		{"lines", events.Line, "<13>one\n<13>two", []string{"<13>one", "<13>two"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder()
			srv, _ := start(t, Config{Network: "udp", Framing: tt.f}, rec)
			c := dial(t, srv)
			send(t, c, tt.in)
			for _, w := range tt.want {
				if e := rec.next(t); e.data != w || e.source != c.LocalAddr().String() {
					t.Fatalf("got %+v, want %q from %s", e, w, c.LocalAddr())
				}
			}
			waitFor(t, "the events to be counted", func() bool { return srv.Stats().Events == 2 })
			if st := srv.Stats(); st.Datagrams != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestTCPRejects(t *testing.T) {
	rec := newRecorder()
	srv, logs := start(t, Config{Network: "tcp", Framing: events.EIF, MaxEvent: 32}, rec)
	c := dial(t, srv)
	garbage := "\x00\x01\x02\xff\xfe;END\x1b[0m;;END\n"
	send(t, c, "A;x="+strings.Repeat("y", 100)+";END\n"+"no class=1;END\n"+garbage+"OK;n=1;END\n")
	if e := rec.next(t); e.data != "OK;n=1;END" {
		t.Fatalf("got %+v, want the good event after the bad ones", e)
	}
	waitFor(t, "the event to be counted", func() bool { return srv.Stats().Events == 1 })
	st := srv.Stats()
	if st.Oversized != 1 || st.Malformed < 2 {
		t.Fatalf("stats %+v", st)
	}
	if !logs.errorNaming(c.LocalAddr().String()) {
		t.Fatal("no error log line naming the sender")
	}
	// The connection is still served.
	send(t, c, "Again;END")
	if e := rec.next(t); e.data != "Again;END" {
		t.Fatalf("got %+v", e)
	}
}

func TestTCPTooManyRejects(t *testing.T) {
	rec := newRecorder()
	srv, _ := start(t, Config{Network: "tcp", Framing: events.Line, MaxRejectsPerConn: 3}, rec)
	c := dial(t, srv)
	send(t, c, "\x01\n\x02\n\x03\n\x04\n")
	expectClosed(t, c)
	if st := srv.Stats(); st.Malformed != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestUDPRejects(t *testing.T) {
	rec := newRecorder()
	srv, logs := start(t, Config{Network: "udp", Framing: events.Line, MaxEvent: 16}, rec)
	c := dial(t, srv)
	send(t, c, strings.Repeat("z", 40)+"\nbad\x07\n\xff\x00\x01garbage\nok")
	if e := rec.next(t); e.data != "ok" {
		t.Fatalf("got %+v", e)
	}
	waitFor(t, "the event to be counted", func() bool { return srv.Stats().Events == 1 })
	if st := srv.Stats(); st.Oversized != 1 || st.Malformed != 2 {
		t.Fatalf("stats %+v", st)
	}
	if !logs.errorNaming(c.LocalAddr().String()) {
		t.Fatal("no error log line naming the sender")
	}
}

func TestPerSourceLimit(t *testing.T) {
	rec := newRecorder()
	srv, logs := start(t, Config{Network: "tcp", Framing: events.Line, MaxConnsPerIP: 2}, rec)
	var conns []net.Conn
	for i := 0; i < 2; i++ {
		c := dial(t, srv)
		send(t, c, "hello\n")
		rec.next(t) // served: the connection counts
		conns = append(conns, c)
	}
	// The refused connection is reset, sometimes before connect returns.
	third, err := net.DialTimeout("tcp", srv.Addr().String(), waitLimit)
	if err == nil {
		defer third.Close()
		expectClosed(t, third)
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("dial: %v", err)
	}
	if st := srv.Stats(); st.Refused != 1 || st.Accepted != 2 || st.Active != 2 {
		t.Fatalf("stats %+v", st)
	}
	if !logs.naming(logrus.WarnLevel, "refused") {
		t.Fatal("no warning about the refused sender")
	}
	// A connection that ends frees its place.
	conns[0].Close()
	waitFor(t, "the closed connection to be released", func() bool { return srv.Stats().Active == 1 })
	c := dial(t, srv)
	send(t, c, "again\n")
	if e := rec.next(t); e.data != "again" {
		t.Fatalf("got %+v", e)
	}
}

func TestHandlerErrorResetsConnection(t *testing.T) {
	rec := newRecorder()
	rec.fail.Store(true)
	srv, logs := start(t, Config{Network: "tcp", Framing: events.EIF}, rec)
	c := dial(t, srv)
	send(t, c, "A;END\n")
	expectClosed(t, c)
	if st := srv.Stats(); st.Failed != 1 || st.Events != 0 {
		t.Fatalf("stats %+v", st)
	}
	if !logs.errorNaming(c.LocalAddr().String()) {
		t.Fatal("no error log line naming the sender")
	}
	waitFor(t, "the connection to be released", func() bool { return srv.Stats().Active == 0 })
}

func TestUDPHandlerErrorCounted(t *testing.T) {
	rec := newRecorder()
	srv, _ := start(t, Config{Network: "udp", Framing: events.Line}, rec)
	rec.fail.Store(true)
	c := dial(t, srv)
	send(t, c, "a\nb\n")
	waitFor(t, "the failures to be counted", func() bool { return srv.Stats().Failed == 2 })
	rec.fail.Store(false)
	send(t, c, "c")
	if e := rec.next(t); e.data != "c" {
		t.Fatalf("got %+v", e)
	}
}

func TestPanicRecovered(t *testing.T) {
	for _, network := range []string{"tcp", "udp"} {
		t.Run(network, func(t *testing.T) {
			rec := newRecorder()
			srv, _ := start(t, Config{Network: network, Framing: events.Line}, rec)
			rec.boom.Store(true)
			c := dial(t, srv)
			send(t, c, "x\n")
			waitFor(t, "the panic to be counted", func() bool { return srv.Stats().Panics == 1 })
			rec.boom.Store(false)
			c2 := dial(t, srv)
			send(t, c2, "y\n")
			if e := rec.next(t); e.data != "y" {
				t.Fatalf("got %+v", e)
			}
		})
	}
}

func TestIdleTimeout(t *testing.T) {
	rec := newRecorder()
	srv, _ := start(t, Config{Network: "tcp", Framing: events.Line, IdleTimeout: 50 * time.Millisecond}, rec)
	c := dial(t, srv)
	send(t, c, "one\n")
	rec.next(t)
	expectClosed(t, c)
}

func TestShutdownDrains(t *testing.T) {
	rec := newRecorder()
	srv, err := New(Config{Network: "tcp", Addr: "127.0.0.1:0", Framing: events.Line, Handler: rec.handle})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background()) }()
	c := dial(t, srv)
	send(t, c, "last words\n")
	rec.next(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	expectClosed(t, c)
	if _, err := net.Dial("tcp", srv.Addr().String()); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

func TestServeContextCancel(t *testing.T) {
	for _, network := range []string{"tcp", "udp"} {
		t.Run(network, func(t *testing.T) {
			rec := newRecorder()
			srv, err := New(Config{Network: network, Addr: "127.0.0.1:0", Framing: events.Line, Handler: rec.handle})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ctx) }()
			c := dial(t, srv)
			send(t, c, "x\n")
			rec.next(t)
			cancel()
			select {
			case err := <-served:
				if err != nil {
					t.Fatalf("Serve: %v", err)
				}
			case <-time.After(waitLimit):
				t.Fatal("Serve did not return")
			}
			if network == "tcp" {
				expectClosed(t, c)
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	h := func(events.Framing, string, []byte) error { return nil }
	for _, cfg := range []Config{
		{Network: "tcp", Addr: "127.0.0.1:0", Framing: 9, Handler: h},
		{Network: "tcp", Addr: "127.0.0.1:0", Framing: events.EIF},
		{Network: "sctp", Addr: "127.0.0.1:0", Framing: events.EIF, Handler: h},
		{Network: "tcp", Addr: "127.0.0.1:0", Framing: events.EIF, Handler: h, MaxEvent: -1},
	} {
		if srv, err := New(cfg); err == nil {
			srv.Shutdown(context.Background())
			t.Fatalf("New(%+v) succeeded", cfg)
		}
	}
}
