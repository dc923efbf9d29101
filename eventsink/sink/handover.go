package sink

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
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

// startWait bounds how long a handover waits for the eventsink to open
// its spool and serve.
var startWait = 10 * time.Second

// inheritKey is the key an intake listener is handed over under: its
// protocol and its listen address as configured. A successor whose
// configuration has the same takes it, under any name.
func inheritKey(l chain.EventListener) string { return "events/" + l.Protocol + "/" + l.Listen }

// inherit sets ic to serve the socket a predecessor handed over under key,
// if there is one.
func inherit(ic *intake.Config, in *chain.Inherited, key string) {
	if in == nil {
		return
	}
	if ln, ok := in.Listeners[key]; ok {
		delete(in.Listeners, key)
		ic.Listener = ln
	}
	if pc, ok := in.PacketConns[key]; ok {
		delete(in.PacketConns, key)
		ic.PacketConn = pc
	}
}

// ListenerFiles returns copies of the intake's listening sockets, for a
// successor.
func (s *Sink) ListenerFiles() ([]mux.ListenerFile, error) {
	// A successor that comes while the spool is being opened waits for
	// it, a while.
	select {
	case <-s.served1:
	case <-time.After(startWait):
		return nil, errors.New("the eventsink is still opening its spool: upgrade again in a moment")
	}
	var out []mux.ListenerFile
	for _, l := range s.servers {
		f, err := l.srv.File()
		if err != nil {
			for _, o := range out {
				_ = o.File.Close()
			}
			return nil, fmt.Errorf("events listener %s: %w", l.name, err)
		}
		out = append(out, mux.ListenerFile{Addr: l.key, File: f})
	}
	return out, nil
}

// handedConn describes one handed-over connection: its listener (name and
// key), how its events were read, and where its reader stood.
type handedConn struct {
	Listener string        `json:"listener"`
	Key      string        `json:"key"`
	Framing  string        `json:"framing"`
	MaxEvent int           `json:"max_event"`
	Reader   framing.State `json:"reader"`
}

// HandOver stops the forwarder and the intake (between events), closes
// the spool, and returns the intake's open connections for the
// successor. Serve returns once its context ends.
func (s *Sink) HandOver(ctx context.Context) (*admin.Handed, error) {
	s.handing.Store(true)
	s.stopFwd()
	var conns []handedConn
	h := &admin.Handed{}
	var errs []error
	// The TCP listeners first, the UDP ones last: a datagram has no
	// sender waiting for it, only a socket buffer that may overflow, so
	// it is read as long as the spool is open.
	udp := func(l listener) int {
		if strings.HasPrefix(l.key, "events/udp") {
			return 1
		}
		return 0
	}
	order := slices.Clone(s.servers)
	slices.SortStableFunc(order, func(a, b listener) int { return cmp.Compare(udp(a), udp(b)) })
	for _, l := range order {
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
			conns = append(conns, handedConn{Listener: l.name, Key: l.key, Framing: l.framing(s.cfg),
				MaxEvent: int(s.cfg.Events.MaxEventBytes), Reader: hc.State})
			h.Files = append(h.Files, f)
		}
	}
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
	var wait context.Context
	if from != nil {
		wait = ctx
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
		l := s.listenerFor(hc)
		var why string
		switch {
		case l == nil:
			why = "its listener " + hc.Listener + " is gone from the configuration"
		case l.framing(s.cfg) != hc.Framing || int(s.cfg.Events.MaxEventBytes) != hc.MaxEvent:
			why = fmt.Sprintf("listener %s now reads %s events of at most %d bytes, not %s of at most %d", l.name,
				l.framing(s.cfg), s.cfg.Events.MaxEventBytes, hc.Framing, hc.MaxEvent)
		}
		if why != "" {
			log.Errorf("a connection from %s handed over is closed, with %d bytes of its next event: %s", c.RemoteAddr(), len(hc.Reader.Pending), why)
			_ = c.Close()
			continue
		}
		if err := l.srv.Resume(c, hc.Reader); err != nil {
			log.WithError(err).Warn("a connection handed over was not taken")
			continue
		}
		taken++
	}
	log.Infof("took over %d open intake connections from the predecessor", taken)
}

// listenerFor returns the intake listener that serves on a connection
// handed over: the one of the same name, else the one of the same key (a
// renamed listener), or nil.
func (s *Sink) listenerFor(hc handedConn) *listener {
	for i, l := range s.servers {
		if l.name == hc.Listener {
			return &s.servers[i]
		}
	}
	for i, l := range s.servers {
		if l.key == hc.Key {
			return &s.servers[i]
		}
	}
	return nil
}

// framing is the framing the listener reads, as configured.
func (l listener) framing(cfg *chain.Config) string {
	for _, el := range cfg.Events.Listeners {
		if el.Name == l.name {
			return el.Framing
		}
	}
	return ""
}

// part is a Sink as a chain.Part.
type part struct{ *Sink }

func (p part) Serve(ctx context.Context, from *admin.Handed) error { return p.serveFrom(ctx, from) }
