package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/eventsink/framing"
	"github.com/relaychain/relaychain/eventsink/intake"
	"github.com/relaychain/relaychain/internal/admin"
	"github.com/relaychain/relaychain/internal/chain"
	"github.com/relaychain/relaychain/mux"
)

// A rolling upgrade of an eventsink: the successor serves copies of the
// intake's listening sockets (named events/NAME), and waits for the
// spool. At the commit this process stops its intake between events
// (what senders send meanwhile waits in the kernel's buffers), stops its
// forwarder (what is not acknowledged is sent again by the successor; the
// epproxy drops what it has already delivered), closes the spool, and
// hands its open intake connections over, with what their readers had
// read of the next event. The successor opens the spool and serves on.

// Part makes the eventsink beside node n (a chain.Hooks Part): its intake
// listeners are bound, or taken from those a predecessor handed over;
// the spool is opened by Serve.
func Part(cfg *chain.Config, n *mux.Node, inherited *chain.Inherited, log *logrus.Entry) (chain.Part, error) {
	s, err := prepare(cfg, n, inherited, log)
	if err != nil {
		return nil, err
	}
	return part{s}, nil
}

// handedSpoolWait bounds the wait for a predecessor to let the spool go.
const handedSpoolWait = 10 * time.Second

// inheritName is the name an intake listener is handed over under.
func inheritName(listener string) string { return "events/" + listener }

// inherit sets ic to serve the socket a predecessor handed over for the
// listener called name, if there is one at the same address.
func inherit(ic *intake.Config, in *chain.Inherited, name string, log *logrus.Entry) {
	if in == nil {
		return
	}
	key := inheritName(name)
	if ln, ok := in.Listeners[key]; ok {
		delete(in.Listeners, key)
		if sameAddr(ic.Addr, ln.Addr()) && strings.HasPrefix(ic.Network, "tcp") {
			ic.Listener = ln
			return
		}
		_ = ln.Close()
	}
	if pc, ok := in.PacketConns[key]; ok {
		delete(in.PacketConns, key)
		if sameAddr(ic.Addr, pc.LocalAddr()) && strings.HasPrefix(ic.Network, "udp") {
			ic.PacketConn = pc
			return
		}
		_ = pc.Close()
	}
}

// sameAddr reports whether a socket bound to have serves the configured
// address want (whose port may be 0 and whose host may be empty).
func sameAddr(want string, have net.Addr) bool {
	host, port, err := net.SplitHostPort(want)
	if err != nil {
		return false
	}
	hhost, hport, err := net.SplitHostPort(have.String())
	if err != nil || port != "0" && port != hport {
		return false
	}
	if host == "" {
		return true
	}
	wip, hip := net.ParseIP(host), net.ParseIP(hhost)
	return wip != nil && wip.Equal(hip) || host == hhost
}

// ListenerFiles returns copies of the intake's listening sockets, for a
// successor.
func (s *Sink) ListenerFiles() ([]mux.ListenerFile, error) {
	var out []mux.ListenerFile
	for _, l := range s.servers {
		f, err := l.srv.File()
		if err != nil {
			for _, o := range out {
				_ = o.File.Close()
			}
			return nil, fmt.Errorf("events listener %s: %w", l.name, err)
		}
		out = append(out, mux.ListenerFile{Addr: inheritName(l.name), File: f})
	}
	return out, nil
}

// handedConn describes one handed-over connection: its listener, and
// where its reader stood.
type handedConn struct {
	Listener string        `json:"listener"`
	Reader   framing.State `json:"reader"`
}

// HandOver stops the intake between events, then the forwarder, closes
// the spool, and returns the intake's open connections for the
// successor. Serve returns once its context ends.
func (s *Sink) HandOver(ctx context.Context) (*admin.Handed, error) {
	s.handing.Store(true)
	var conns []handedConn
	h := &admin.Handed{}
	var errs []error
	for _, l := range s.servers {
		handed, err := l.srv.HandOver(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("events listener %s: %w", l.name, err))
		}
		for _, hc := range handed {
			f, err := hc.Conn.File()
			_ = hc.Conn.Close()
			if err != nil {
				errs = append(errs, fmt.Errorf("events listener %s: a connection from %s: %w", l.name, hc.Conn.RemoteAddr(), err))
				continue
			}
			conns = append(conns, handedConn{Listener: l.name, Reader: hc.State})
			h.Files = append(h.Files, f)
		}
	}
	s.stopFwd()
	if s.served.Load() {
		select {
		case <-s.fwdDone:
		case <-ctx.Done():
			errs = append(errs, errors.New("the forwarder did not stop in time"))
		}
	}
	if s.sp != nil {
		if err := s.sp.Close(); err != nil {
			errs = append(errs, fmt.Errorf("spool: %w", err))
		}
	}
	state, err := json.Marshal(conns)
	if err != nil {
		h.Close()
		return nil, errors.Join(append(errs, err)...)
	}
	h.State = state
	s.log.WithField("component", "events").Infof("handed over to the successor: the spool, and %d open intake connections", len(conns))
	return h, errors.Join(errs...)
}

// serveFrom is Serve for a Sink made by Part: it opens the spool
// (waiting for a predecessor to let it go), serves on the connections
// that from hands over, and serves.
func (s *Sink) serveFrom(ctx context.Context, from *admin.Handed) error {
	wait := time.Duration(0)
	if from != nil {
		wait = handedSpoolWait
	}
	if err := s.openSpool(wait); err != nil {
		from.Close()
		s.Close()
		return err
	}
	if from != nil {
		s.resume(from)
	}
	return s.Serve(ctx)
}

// resume serves on the connections a predecessor handed over.
func (s *Sink) resume(from *admin.Handed) {
	log := s.log.WithField("component", "events")
	var conns []handedConn
	if err := json.Unmarshal(from.State, &conns); err != nil || len(conns) != len(from.Files) {
		log.Errorf("the predecessor's intake connections are not understood (%d files; %v): closing them", len(from.Files), err)
		from.Close()
		return
	}
	taken := 0
	for i, hc := range conns {
		f := from.Files[i]
		c, err := net.FileConn(f)
		_ = f.Close()
		if err != nil {
			log.WithError(err).Errorf("a connection of listener %s handed over is not usable", hc.Listener)
			continue
		}
		srv := s.server(hc.Listener)
		if srv == nil {
			log.Warnf("listener %s is gone from the configuration: closing its connection from %s", hc.Listener, c.RemoteAddr())
			_ = c.Close()
			continue
		}
		if err := srv.Resume(c, hc.Reader); err != nil {
			log.WithError(err).Warn("a connection handed over was not taken")
			continue
		}
		taken++
	}
	log.Infof("took over %d open intake connections from the predecessor", taken)
}

// server returns the intake listener called name, or nil.
func (s *Sink) server(name string) *intake.Server {
	for _, l := range s.servers {
		if l.name == name {
			return l.srv
		}
	}
	return nil
}

// part is a Sink as a chain.Part.
type part struct{ *Sink }

func (p part) Serve(ctx context.Context, from *admin.Handed) error { return p.serveFrom(ctx, from) }
