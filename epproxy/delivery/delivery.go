// Package delivery is the epproxy's event service: it takes the batches
// that eventsinks send over routed sessions, drops what was already
// delivered (by sink and sequence number, kept on disk), writes the rest
// to the event server in the framing the events arrived in and/or to a
// JSON lines file, and acknowledges a batch only after that succeeded.
// The wire format it reads and answers is package events.
//
// Its pieces: Dedup keeps, per sink and output, the highest sequence
// number delivered, in the state file (the events section's state,
// events-state.json by default) replaced atomically; Deliverer writes
// events to the event server in their framing; JSONWriter writes them as
// JSON lines.
//
// Typical usage:
//
//	svc, err := delivery.New(delivery.Config{Server: "tec:5529", StateFile: "events-state.json"}, log)
//	defer svc.Close()
//	services := map[string]mux.Service{"events": {Handler: svc.Handle}}
package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/events"
	"github.com/relaychain/relaychain/mux"
)

// Config says where events go.
type Config struct {
	Server       string        // the event server's HOST:PORT, or ""
	File         string        // a JSON lines file, or ""
	StateFile    string        // the deduplication state; required
	DialTimeout  time.Duration // default 10s
	WriteTimeout time.Duration // default 10s
	Limits       events.Limits // bounds of an incoming batch
}

// Stats are the service's counters.
type Stats struct {
	Batches    uint64 // batches acknowledged
	Delivered  uint64 // events written
	Duplicates uint64 // events dropped as already delivered
	Failures   uint64 // batches not acknowledged because delivery failed
}

// Service is the event service.
type Service struct {
	cfg   Config
	log   *logrus.Entry
	dedup *Dedup

	file *os.File
	json *JSONWriter

	srvMu sync.Mutex // guards the event server connection
	srv   *serverConn

	batches, delivered, dups, failures atomic.Uint64
}

// New opens the state and the JSON file. The event server is dialled on
// the first delivery, and again after any failure.
func New(cfg Config, log *logrus.Entry) (*Service, error) {
	if cfg.Server == "" && cfg.File == "" {
		return nil, errors.New("events: no event server and no file")
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if err := os.MkdirAll(filepath.Dir(cfg.StateFile), 0o755); err != nil {
		return nil, fmt.Errorf("events state directory: %w", err)
	}
	d, err := OpenDedup(cfg.StateFile)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, log: log.WithField("component", "events"), dedup: d}
	if cfg.File != "" {
		f, err := os.OpenFile(cfg.File, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, fmt.Errorf("events file: %w", err)
		}
		s.file = f
		s.json = NewJSONWriter(f)
	}
	return s, nil
}

// Stats returns the counters.
func (s *Service) Stats() Stats {
	return Stats{Batches: s.batches.Load(), Delivered: s.delivered.Load(), Duplicates: s.dups.Load(), Failures: s.failures.Load()}
}

// Close closes the file and the event server connection.
func (s *Service) Close() error {
	s.srvMu.Lock()
	if s.srv != nil {
		s.srv.close()
		s.srv = nil
	}
	s.srvMu.Unlock()
	if s.file != nil {
		return s.file.Close()
	}
	return nil
}

// Handle serves one session from an eventsink (a mux.Service Handler):
// batch in, ack out, until the sink half-closes. A batch whose delivery
// fails is not acknowledged and the session is aborted; the sink sends it
// again later.
func (s *Service) Handle(ctx context.Context, c *mux.Conn) {
	h := c.Header()
	log := s.log.WithFields(logrus.Fields{"id": h.IDString(), "sink": h.Origin})
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	defer c.Close()
	for {
		b, err := events.ReadBatch(c, s.cfg.Limits)
		if errors.Is(err, io.EOF) {
			_ = c.CloseWrite()
			return
		}
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, mux.ErrAborted) {
				log.WithError(err).Error("bad batch; session closed")
			}
			return
		}
		if b.Sink != h.Origin {
			log.Errorf("batch names sink %q on a session from %s; session closed", b.Sink, h.Origin)
			return
		}
		n := len(b.Events)
		ack, fresh, err := s.process(b)
		if err != nil {
			s.failures.Add(1)
			log.WithError(err).Error("delivery failed; the sink will send the batch again")
			return
		}
		s.delivered.Add(uint64(fresh))
		s.dups.Add(uint64(n - fresh))
		s.batches.Add(1)
		_ = c.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		if err := events.WriteAck(c, ack); err != nil {
			log.WithError(err).Warn("ack not sent; the sink will send the batch again")
			return
		}
		_ = c.SetWriteDeadline(time.Time{})
		log.WithFields(logrus.Fields{"events": n, "upto": ack.UpTo}).Debug("batch delivered")
	}
}

// process delivers a batch to each output (the event server, the file)
// once. Each output keeps its own mark per sink, so a batch that reached
// the file but not the server is, when the sink sends it again, written to
// the server only. It returns the ack and how many events were new to the
// first output.
func (s *Service) process(b *events.Batch) (events.Ack, int, error) {
	sink := b.Sink
	var ack events.Ack
	fresh := -1
	for _, out := range s.outputs() {
		keyed := *b
		keyed.Sink = sink + out.suffix
		n := 0
		a, err := s.dedup.Process(&keyed, func(_ string, evs []events.Event) error {
			n = len(evs)
			return out.deliver(sink, evs)
		})
		if err != nil {
			return events.Ack{}, 0, err
		}
		if fresh < 0 {
			fresh = n
		}
		ack = a
	}
	return ack, fresh, nil
}

// output is one place events go; suffix tells its marks apart in the
// deduplication state (labels hold no '#').
type output struct {
	suffix  string
	deliver func(sink string, evs []events.Event) error
}

func (s *Service) outputs() []output {
	var outs []output
	if s.cfg.Server != "" {
		outs = append(outs, output{"", s.toServer})
	}
	if s.json != nil {
		outs = append(outs, output{"#file", func(sink string, evs []events.Event) error {
			if err := s.json.Deliver(sink, evs); err != nil {
				return fmt.Errorf("events file: %w", err)
			}
			return nil
		}})
	}
	return outs
}

func (s *Service) toServer(sink string, evs []events.Event) error {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	if s.srv != nil && s.srv.isDead() {
		s.srv.close()
		s.srv = nil
	}
	if s.srv == nil {
		c, err := net.DialTimeout("tcp", s.cfg.Server, s.cfg.DialTimeout)
		if err != nil {
			return fmt.Errorf("event server %s: %w", s.cfg.Server, err)
		}
		s.srv = newServerConn(c)
		s.log.WithField("server", s.cfg.Server).Info("connected to the event server")
	}
	_ = s.srv.c.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	if err := s.srv.d.Deliver(sink, evs); err != nil {
		s.log.WithError(err).Warn("event server connection lost")
		s.srv.close()
		s.srv = nil
		return fmt.Errorf("event server %s: %w", s.cfg.Server, err)
	}
	return nil
}

// serverConn is the connection to the event server. The server sends
// nothing. Before each delivery, isDead reads what the socket holds without
// blocking, so that a connection the server has closed (its FIN has
// arrived) is dialled again instead of written into: those bytes would be
// lost although acknowledged. (A goroutine blocked in Read cannot tell in
// time: it may not have run yet when the next batch comes.)
type serverConn struct {
	c  net.Conn
	rc syscall.RawConn // nil if c has no descriptor: isDead is always false
	d  *Deliverer
}

func newServerConn(c net.Conn) *serverConn {
	sc := &serverConn{c: c, d: NewDeliverer(c)}
	if s, ok := c.(syscall.Conn); ok {
		if rc, err := s.SyscallConn(); err == nil {
			sc.rc = rc
		}
	}
	return sc
}

// isDead reports whether the server has closed or reset the connection. It
// discards whatever the server sent. It never blocks: the socket is in
// non-blocking mode, so an empty, open socket reads EAGAIN.
func (sc *serverConn) isDead() bool {
	if sc.rc == nil {
		return false
	}
	var buf [4096]byte
	dead := false
	err := sc.rc.Read(func(fd uintptr) bool {
		for range 64 { // a server that floods us is not dead
			n, err := syscall.Read(int(fd), buf[:])
			switch {
			case err == syscall.EINTR:
			case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
				return true
			case err != nil || n == 0: // reset, or the server's FIN
				dead = true
				return true
			}
		}
		return true
	})
	return dead || err != nil
}

func (sc *serverConn) close() {
	_ = sc.c.Close()
}
