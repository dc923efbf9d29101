// Package intake is the eventsink's listeners: TCP and UDP servers that read
// events in one framing (EIF or lines, see package framing) and hand each one
// to a callback, normally the spool's Append.
//
// An oversized or malformed event is rejected: a level-1 (Error) log line
// names the sender, a counter goes up, and the server reads on. On TCP,
// the lines framing also takes syslog's octet-counted frames (RFC 6587,
// "106 <13>1 ..."), as rsyslog, syslog-ng and logger --octet-count send
// them; a frame whose count is over the maximum event size cannot be
// skipped safely, so that connection is reset with a level-1 line naming
// the sender and the count (the events before it are stored), and counted
// as oversized. A TCP event
// the callback fails to store is not acknowledged in any way: the error is
// logged and the connection is reset, so the sender sees a failure. A UDP
// event the callback fails to store is logged and counted as failed.
//
// Limits: a maximum event size, connections per source IP and in total
// (a connection over the limit is reset at once and counted as refused),
// an idle timeout per TCP connection (a read deadline renewed before every
// read), and a number of rejected events after which a TCP connection is
// closed. Shutdown reads on from each connection until its sender has been
// quiet for a quarter of a second, so that what it sent before the
// shutdown is stored; HandOver stops the server between events for a
// process that takes its place (handover.go). A panic while serving one connection or datagram is recovered,
// logged with its stack and counted; the server keeps serving.
//
// Typical usage:
//
//	srv, err := intake.New(intake.Config{
//		Network: "tcp", Addr: ":5529", Framing: events.EIF,
//		Handler: func(f events.Framing, src string, ev []byte) error { _, err := sp.Append(f, src, ev); return err },
//		Log:     log.WithField("listener", "eif-tcp"),
//	})
//	if err != nil { ... }
//	g.Go(func() error { return srv.Serve(ctx) })
//	...
//	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
//	defer cancel()
//	srv.Shutdown(shutdownCtx)
package intake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/events"
	"github.com/relaychain/relaychain/eventsink/framing"
	"github.com/relaychain/relaychain/mux"
)

// Defaults for zero Config fields.
const (
	DefaultMaxConnsPerIP     = 16
	DefaultMaxConns          = 1024
	DefaultIdleTimeout       = 5 * time.Minute
	DefaultMaxRejectsPerConn = 100
	// DefaultReadBuffer is a UDP socket's receive buffer: room for a few
	// thousand datagrams while the server is held up (a burst, a pause
	// of the process, the handover to a successor). The kernel caps it
	// at net.core.rmem_max.
	DefaultReadBuffer = 4 << 20
)

// The backoff after a failed accept or read (mux.Backoff): 5ms doubling up
// to 1s.
const (
	retryMin = 5 * time.Millisecond
	retryMax = time.Second
)

// Handler stores one event. data is valid only during the call. For TCP, a
// non-nil error resets the connection.
type Handler func(framing events.Framing, source string, data []byte) error

// Config configures a Server.
type Config struct {
	// Network is "tcp" (or "tcp4", "tcp6") or "udp" (or "udp4", "udp6").
	Network string
	// Addr is the listen address, e.g. ":5529" or "127.0.0.1:0".
	Addr string
	// Framing is events.EIF or events.Line.
	Framing events.Framing
	// MaxEvent bounds an event. Zero means framing.DefaultMaxEvent (64 KiB).
	MaxEvent int
	// MaxConnsPerIP bounds the TCP connections from one source IP. Zero
	// means DefaultMaxConnsPerIP (16); negative means no limit.
	MaxConnsPerIP int
	// MaxConns bounds all TCP connections. Zero means DefaultMaxConns (1024);
	// negative means no limit.
	MaxConns int
	// IdleTimeout closes a TCP connection that sends nothing for that long.
	// Zero means DefaultIdleTimeout (5m); negative means never.
	IdleTimeout time.Duration
	// MaxRejectsPerConn closes a TCP connection after that many rejected
	// events. Zero means DefaultMaxRejectsPerConn (100); negative means never.
	MaxRejectsPerConn int
	// Handler receives every accepted event. Required.
	Handler Handler
	// Log receives the server's log lines. Nil means no logging.
	Log *logrus.Entry

	// ReadBuffer is a UDP socket's receive buffer. Zero means
	// DefaultReadBuffer; negative means the system's default.
	ReadBuffer int

	// Listener (for TCP) or PacketConn (for UDP), when set, is served
	// instead of binding Addr: a socket handed over by the process whose
	// place this one takes. New owns it, and closes it if it fails.
	Listener   net.Listener
	PacketConn net.PacketConn
}

// Stats are the server's counters.
type Stats struct {
	Accepted  uint64 // TCP connections accepted
	Refused   uint64 // TCP connections refused by a connection limit
	Active    int    // TCP connections open now
	Datagrams uint64 // UDP datagrams read
	Events    uint64 // events stored by the handler
	Oversized uint64 // events rejected as oversized
	Malformed uint64 // events rejected as malformed
	Failed    uint64 // events the handler failed to store
	Panics    uint64 // panics recovered
}

// Server is one listener. Its methods are safe for concurrent use.
type Server struct {
	cfg  Config
	log  *logrus.Entry
	ln   net.Listener   // TCP
	pc   net.PacketConn // UDP
	name string         // framing name, for logs

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	perIP    map[string]int
	isClosed bool // the listener is closed: admit no more connections

	wg        sync.WaitGroup // connection goroutines
	started   atomic.Bool
	serveDone chan struct{}      // closed when Serve returns
	closed    context.Context    // done when the listener is closed
	markClose context.CancelFunc // ends closed
	closeOnce sync.Once
	draining  atomic.Bool

	// Handing over (handover.go): the connections stopped for a
	// successor, and whether they are being stopped.
	handing atomic.Bool
	handed  []Handed

	accepted, refused, datagrams, events   atomic.Uint64
	oversized, malformed, failed, panicked atomic.Uint64
}

// New checks cfg and opens the listener. Serve serves it; Shutdown closes it.
func New(cfg Config) (*Server, error) {
	var errs []error
	if !cfg.Framing.Valid() {
		errs = append(errs, fmt.Errorf("%w: %d", events.ErrUnknownFraming, cfg.Framing))
	}
	if cfg.Handler == nil {
		errs = append(errs, errors.New("no handler"))
	}
	if cfg.MaxEvent < 0 {
		errs = append(errs, fmt.Errorf("negative max event size %d", cfg.MaxEvent))
	}
	if err := errors.Join(errs...); err != nil {
		// New owns the sockets it was given, even when it refuses.
		if cfg.Listener != nil {
			_ = cfg.Listener.Close()
		}
		if cfg.PacketConn != nil {
			_ = cfg.PacketConn.Close()
		}
		return nil, fmt.Errorf("intake config: %w", err)
	}
	cfg.MaxEvent = cmpOr(cfg.MaxEvent, framing.DefaultMaxEvent)
	cfg.MaxConnsPerIP = cmpOr(cfg.MaxConnsPerIP, DefaultMaxConnsPerIP)
	cfg.MaxConns = cmpOr(cfg.MaxConns, DefaultMaxConns)
	cfg.IdleTimeout = cmpOr(cfg.IdleTimeout, DefaultIdleTimeout)
	cfg.MaxRejectsPerConn = cmpOr(cfg.MaxRejectsPerConn, DefaultMaxRejectsPerConn)
	log := cfg.Log
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = logrus.NewEntry(l)
	}
	s := &Server{
		cfg: cfg, name: cfg.Framing.String(),
		conns: map[net.Conn]struct{}{}, perIP: map[string]int{},
		serveDone: make(chan struct{}),
	}
	s.closed, s.markClose = context.WithCancel(context.Background())
	switch cfg.Network {
	case "tcp", "tcp4", "tcp6":
		if cfg.Listener != nil {
			s.ln = cfg.Listener
			break
		}
		ln, err := net.Listen(cfg.Network, cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("listen %s %s: %w", cfg.Network, cfg.Addr, err)
		}
		s.ln = ln
	case "udp", "udp4", "udp6":
		if cfg.PacketConn != nil {
			s.pc = cfg.PacketConn
			break
		}
		pc, err := net.ListenPacket(cfg.Network, cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("listen %s %s: %w", cfg.Network, cfg.Addr, err)
		}
		if uc, ok := pc.(*net.UDPConn); ok && cfg.ReadBuffer >= 0 {
			// Best effort: the kernel caps it, and a smaller buffer only
			// drops more in a burst.
			_ = uc.SetReadBuffer(cmpOr(cfg.ReadBuffer, DefaultReadBuffer))
		}
		s.pc = pc
	default:
		return nil, fmt.Errorf("intake config: unknown network %q", cfg.Network)
	}
	s.log = log.WithField("listen", s.Addr().String())
	return s, nil
}

// cmpOr returns v, or def when v is zero.
func cmpOr[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr {
	if s.ln != nil {
		return s.ln.Addr()
	}
	return s.pc.LocalAddr()
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	active := len(s.conns)
	s.mu.Unlock()
	return Stats{
		Accepted: s.accepted.Load(), Refused: s.refused.Load(), Active: active,
		Datagrams: s.datagrams.Load(), Events: s.events.Load(), Oversized: s.oversized.Load(),
		Malformed: s.malformed.Load(), Failed: s.failed.Load(), Panics: s.panicked.Load(),
	}
}

// Serve serves until Shutdown or until ctx ends; ending ctx closes every
// connection at once (use Shutdown with a fresh context to drain). It
// returns nil then, after every connection goroutine has ended. Serve may be
// called once.
func (s *Server) Serve(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("intake: Serve called twice")
	}
	defer close(s.serveDone)
	watchDone := make(chan struct{})
	go s.watch(ctx, watchDone)
	if s.ln != nil {
		s.acceptLoop()
	} else {
		s.readLoop()
	}
	s.closeListener()
	<-watchDone
	s.wg.Wait()
	return nil
}

// watch closes everything when ctx ends before the listener is closed.
func (s *Server) watch(ctx context.Context, done chan struct{}) {
	defer close(done)
	select {
	case <-ctx.Done():
		s.closeListener()
		s.closeConns()
	case <-s.closed.Done():
	}
}

// Shutdown stops accepting and lets each TCP connection finish: it reads
// on what the sender has already sent, until the connection has been
// quiet for drainQuiet, so that events waiting in the kernel's buffers
// are stored, not dropped with the connection. It waits for the
// connection goroutines (and Serve) to end. When ctx ends first, it
// closes the remaining connections and returns ctx's error after they
// ended. Shutdown is idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	return s.stop(ctx, time.Now().Add(drainQuiet))
}

// drainQuiet is how long a connection must stay silent before Shutdown
// closes it.
const drainQuiet = 250 * time.Millisecond

// stop stops accepting, sets every connection's read deadline to
// deadline, and waits as Shutdown says.
func (s *Server) stop(ctx context.Context, deadline time.Time) error {
	s.closeListener()
	s.mu.Lock()
	for c := range s.conns {
		c.SetReadDeadline(deadline)
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		if s.started.Load() {
			<-s.serveDone
		}
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.closeConns()
		<-done
		return ctx.Err()
	}
}

func (s *Server) closeListener() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.isClosed = true
		s.mu.Unlock()
		s.markClose()
		if s.ln != nil {
			s.ln.Close()
		} else {
			s.pc.Close()
		}
	})
}

func (s *Server) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// retry waits the next step of b after a failed accept or read, unless
// the server closes meanwhile. It reports whether the server is still open.
func (s *Server) retry(b *mux.Backoff) bool {
	return mux.SleepCtx(s.closed, b.Next())
}
