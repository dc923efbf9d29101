package intake

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/relaychain/relaychain/eventsink/framing"
)

// Handing over to a successor (an eventsink's rolling upgrade): the
// successor serves copies of the listening sockets (Config.Listener,
// Config.PacketConn); HandOver stops this server between events and
// returns its open TCP connections, which the successor serves on with
// Resume. What senders send meanwhile waits in the kernel's buffers:
// nothing is read twice and nothing is dropped.

// Handed is an open TCP connection that a server stopped between events,
// and where its reader stood.
type Handed struct {
	Conn  *net.TCPConn
	State framing.State
}

// HandOver stops accepting and reading at once, lets each TCP connection
// return the events it has read, and returns the connections with where
// their readers stood, for Resume in the process that takes this one's
// place; the caller owns them. A connection that cannot be resumed (its
// sender had closed it) is closed as Shutdown would. The server is shut
// down after HandOver. When ctx ends first, the remaining connections
// are closed and ctx's error is returned with those handed.
func (s *Server) HandOver(ctx context.Context) ([]Handed, error) {
	s.handing.Store(true)
	s.draining.Store(true)
	err := s.stop(ctx, time.Unix(1, 0))
	s.mu.Lock()
	out := s.handed
	s.handed = nil
	s.mu.Unlock()
	if len(out) > 0 {
		s.log.Infof("intake: %d connections stopped between events, for the successor", len(out))
	}
	return out, err
}

// keep takes c, whose reader rd stopped with err, for HandOver; it
// reports false if c is not handed over (it ends as usual).
func (s *Server) keep(c net.Conn, rd *framing.Reader, err error) bool {
	if !s.handing.Load() || !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return false
	}
	st, ok := rd.Suspend()
	if !ok {
		return false
	}
	s.mu.Lock()
	s.handed = append(s.handed, Handed{Conn: tc, State: st})
	s.mu.Unlock()
	return true
}

// Resume serves a TCP connection handed over by a predecessor's
// HandOver, its reader taking up from st. The connection limits apply as
// to a new one. Resume may be called before Serve.
func (s *Server) Resume(c net.Conn, st framing.State) error {
	if s.ln == nil {
		_ = c.Close()
		return fmt.Errorf("intake: a TCP connection handed to a %s listener", s.cfg.Network)
	}
	if !s.admit(c) {
		return fmt.Errorf("intake: connection from %s handed over and refused", c.RemoteAddr())
	}
	go s.serveConn(c, &st)
	return nil
}

// File returns a copy of the listening socket, for a successor.
func (s *Server) File() (*os.File, error) {
	var sock any = s.pc
	if s.ln != nil {
		sock = s.ln
	}
	fl, ok := sock.(interface{ File() (*os.File, error) })
	if !ok {
		return nil, fmt.Errorf("intake: the socket on %s cannot be handed over", s.Addr())
	}
	return fl.File()
}
