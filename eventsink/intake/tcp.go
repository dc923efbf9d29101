package intake

import (
	"errors"
	"io"
	"net"
	"os"
	"runtime/debug"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/eventsink/framing"
	"github.com/relaychain/relaychain/mux"
)

// acceptLoop accepts TCP connections until the listener is closed. It does
// no I/O of its own: each connection is served by its own goroutine.
func (s *Server) acceptLoop() {
	backoff := mux.Backoff{Min: retryMin, Max: retryMax}
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warnf("intake: accept: %v", err)
			if !s.retry(&backoff) {
				return
			}
			continue
		}
		backoff.Reset()
		if s.admit(c) {
			go s.serveConn(c, nil)
		}
	}
}

// admit applies the connection limits and registers c. A refused connection
// is reset.
func (s *Server) admit(c net.Conn) bool {
	ip := hostOf(c.RemoteAddr())
	s.mu.Lock()
	defer s.mu.Unlock()
	var why string
	switch {
	case s.isClosed:
		c.Close()
		return false
	case s.cfg.MaxConns > 0 && len(s.conns) >= s.cfg.MaxConns:
		why = "connection limit"
	case s.cfg.MaxConnsPerIP > 0 && s.perIP[ip] >= s.cfg.MaxConnsPerIP:
		why = "per-source connection limit"
	}
	if why != "" {
		s.refused.Add(1)
		s.log.WithField("peer", c.RemoteAddr().String()).Warnf("intake: connection from %s refused: %s reached", c.RemoteAddr(), why)
		reset(c)
		return false
	}
	s.accepted.Add(1)
	s.conns[c] = struct{}{}
	s.perIP[ip]++
	s.wg.Add(1)
	return true
}

// release unregisters c.
func (s *Server) release(c net.Conn) {
	ip := hostOf(c.RemoteAddr())
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
}

// hostOf returns the IP of a TCP address.
func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// reset closes c with an RST, so that the sender sees a failure rather than
// a clean end.
func reset(c net.Conn) {
	if tc, ok := c.(interface{ SetLinger(int) error }); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// serveConn reads events from c until it ends; from, if not nil, is
// where the reader of a connection handed over stood. serveConn closes c,
// unless it hands it over.
func (s *Server) serveConn(c net.Conn, from *framing.State) {
	defer s.wg.Done()
	src := c.RemoteAddr().String()
	log := s.log.WithField("peer", src)
	kept := false
	defer func() {
		if r := recover(); r != nil {
			s.panicked.Add(1)
			log.Errorf("intake: panic serving %s: %v\n%s", src, r, debug.Stack())
			reset(c)
		}
		if !kept {
			c.Close()
		}
		s.release(c)
	}()
	input := &idleReader{c: c, idle: s.cfg.IdleTimeout, draining: &s.draining, handing: &s.handing}
	var rd *framing.Reader
	if from != nil {
		var err error
		if rd, err = framing.Resume(input, s.cfg.Framing, s.cfg.MaxEvent, *from); err != nil {
			log.Errorf("intake: connection from %s handed over unusable, resetting it: %v", src, err)
			reset(c)
			return
		}
		log.Debugf("intake: connection from %s taken over (%d bytes pending)", src, len(from.Pending))
	} else {
		log.Debugf("intake: connection from %s", src)
		rd = framing.NewReader(input, s.cfg.Framing, s.cfg.MaxEvent)
	}
	rejects := 0
	for {
		ev, err := rd.Next()
		if err == nil {
			if herr := s.cfg.Handler(s.cfg.Framing, src, ev); herr != nil {
				s.failed.Add(1)
				log.Errorf("intake: %s event from %s not stored, resetting the connection: %v", s.name, src, herr)
				reset(c)
				return
			}
			s.events.Add(1)
			continue
		}
		if errors.Is(err, framing.ErrFrameTooLarge) {
			// The stream cannot be followed past it: this connection ends,
			// the events before it are stored, the other senders go on.
			s.oversized.Add(1)
			log.Errorf("intake: %s connection from %s closed: %v", s.name, src, err)
			reset(c)
			return
		}
		if !s.reject(log, src, err) {
			if kept = s.keep(c, rd, err); !kept {
				s.connEnd(log, src, err)
			}
			return
		}
		if rejects++; s.cfg.MaxRejectsPerConn > 0 && rejects >= s.cfg.MaxRejectsPerConn {
			log.Errorf("intake: %d bad events from %s, resetting the connection", rejects, src)
			reset(c)
			return
		}
	}
}

// reject counts and logs a rejected event. It reports false if err is not
// about one event.
func (s *Server) reject(log *logrus.Entry, src string, err error) bool {
	switch {
	case errors.Is(err, framing.ErrOversized):
		s.oversized.Add(1)
	case errors.Is(err, framing.ErrMalformed):
		s.malformed.Add(1)
	default:
		return false
	}
	log.Errorf("intake: %s event from %s rejected: %v", s.name, src, err)
	return true
}

// connEnd logs the end of a connection at the level its cause deserves.
func (s *Server) connEnd(log *logrus.Entry, src string, err error) {
	switch {
	case errors.Is(err, io.EOF):
		log.Debugf("intake: connection from %s closed", src)
	case errors.Is(err, os.ErrDeadlineExceeded) && s.draining.Load():
		log.Debugf("intake: connection from %s closed by shutdown", src)
	case errors.Is(err, os.ErrDeadlineExceeded):
		log.Infof("intake: connection from %s idle for %s, closing", src, s.cfg.IdleTimeout)
	case errors.Is(err, net.ErrClosed):
		log.Debugf("intake: connection from %s closed by shutdown", src)
	default:
		log.Infof("intake: connection from %s: %v", src, err)
	}
}

// idleReader renews the connection's read deadline before every read.
// Once the server drains, the deadline is drainQuiet away: reads go on
// while the sender has more. Once it hands over, the deadline is in the
// past: reads stop at once.
type idleReader struct {
	c                 net.Conn
	idle              time.Duration
	draining, handing interface{ Load() bool }
}

func (r *idleReader) Read(p []byte) (int, error) {
	if r.idle > 0 {
		r.c.SetReadDeadline(time.Now().Add(r.idle))
	}
	// Checked after setting the deadline: Shutdown and HandOver set the
	// flag, then the deadline, so one of the two orders wins.
	switch {
	case r.handing.Load():
		r.c.SetReadDeadline(time.Unix(1, 0))
	case r.draining.Load():
		r.c.SetReadDeadline(time.Now().Add(drainQuiet))
	}
	return r.c.Read(p)
}
