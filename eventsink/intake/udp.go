package intake

import (
	"errors"
	"net"
	"runtime/debug"

	"github.com/relaychain/relaychain/eventsink/framing"
	"github.com/relaychain/relaychain/mux"
)

// maxDatagram is the largest UDP payload.
const maxDatagram = 64 << 10

// readLoop reads datagrams until the socket is closed.
func (s *Server) readLoop() {
	buf := make([]byte, maxDatagram)
	backoff := mux.Backoff{Min: retryMin, Max: retryMax}
	for {
		n, addr, err := s.pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warnf("intake: read datagram: %v", err)
			if !s.retry(&backoff) {
				return
			}
			continue
		}
		backoff.Reset()
		s.datagrams.Add(1)
		s.serveDatagram(buf[:n], addr.String())
	}
}

// serveDatagram hands the events of one datagram to the handler.
func (s *Server) serveDatagram(dgram []byte, src string) {
	log := s.log.WithField("peer", src)
	defer func() {
		if r := recover(); r != nil {
			s.panicked.Add(1)
			log.Errorf("intake: panic serving a datagram from %s: %v\n%s", src, r, debug.Stack())
		}
	}()
	for ev, err := range framing.SplitDatagram(s.cfg.Framing, dgram, s.cfg.MaxEvent) {
		if err != nil {
			if !s.reject(log, src, err) {
				log.Errorf("intake: datagram from %s: %v", src, err)
			}
			continue
		}
		if herr := s.cfg.Handler(s.cfg.Framing, src, ev); herr != nil {
			s.failed.Add(1)
			log.Errorf("intake: %s event from %s dropped: %v", s.name, src, herr)
			continue
		}
		s.events.Add(1)
	}
}
