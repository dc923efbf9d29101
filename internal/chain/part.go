package chain

import (
	"context"
	"net"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/internal/admin"
	"github.com/relaychain/relaychain/mux"
)

// A Part is what a daemon runs beside its node (Hooks.Part): the
// eventsink's intake, spool and forwarder. In a rolling upgrade it hands
// its listening sockets to the successor with the node's, and, at the
// commit, stops and hands over what it holds open.
type Part interface {
	// ListenerFiles returns copies of the part's listening sockets, under
	// names that are not addresses of the node's.
	ListenerFiles() ([]mux.ListenerFile, error)
	// HandOver stops the part for the successor that took the node's
	// place, releasing what the successor opens next, and returns what
	// it hands over (nil: nothing). It must return within ctx. Serve
	// returns soon after.
	HandOver(ctx context.Context) (*admin.Handed, error)
	// Serve runs the part until ctx ends; from is what a predecessor's
	// part handed over (nil: none), which Serve owns.
	Serve(ctx context.Context, from *admin.Handed) error
	// Close releases what the part bound, when it is not served (the
	// node failed to start).
	Close()
}

// Inherited are the sockets a predecessor handed over that the node did
// not take: a Part takes those it serves, deleting them from the maps;
// the rest are closed.
type Inherited struct {
	Listeners   map[string]net.Listener
	PacketConns map[string]net.PacketConn
}

// closePackets closes the datagram sockets no part took.
func (in *Inherited) closePackets() {
	for name, pc := range in.PacketConns {
		_ = pc.Close()
		delete(in.PacketConns, name)
	}
}

// partHandOverTimeout bounds a part's handover at the commit: the
// successor waits for it before it accepts.
const partHandOverTimeout = 5 * time.Second

// listenerFiles returns copies of the node's and the part's listening
// sockets, for a successor.
func listenerFiles(n *mux.Node, p Part) ([]mux.ListenerFile, error) {
	files, err := n.ListenerFiles()
	if err != nil || p == nil {
		return files, err
	}
	more, err := p.ListenerFiles()
	if err != nil {
		for _, f := range files {
			_ = f.File.Close()
		}
		return nil, err
	}
	return append(files, more...), nil
}

// handPartOver stops part (if any) for the successor, and returns what it
// hands over. The node is already handing over: a failure is logged, and
// what the part could hand over goes.
func handPartOver(p Part, log *logrus.Entry) *admin.Handed {
	if p == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), partHandOverTimeout)
	defer cancel()
	h, err := p.HandOver(ctx)
	if err != nil {
		log.WithError(err).Error("handover: the part beside the node did not hand over cleanly")
	}
	return h
}

// RunFunc makes a Hooks.Part of run, which runs beside the node until ctx
// ends (and must return by then; an error stops the daemon), and has
// nothing to hand over in an upgrade.
func RunFunc(run func(ctx context.Context, cfg *Config, n *mux.Node, log *logrus.Entry) error) func(*Config, *mux.Node, *Inherited, *logrus.Entry) (Part, error) {
	return func(cfg *Config, n *mux.Node, _ *Inherited, log *logrus.Entry) (Part, error) {
		return runPart{func(ctx context.Context) error { return run(ctx, cfg, n, log) }}, nil
	}
}

// runPart is a Part of a function.
type runPart struct{ run func(context.Context) error }

func (runPart) ListenerFiles() ([]mux.ListenerFile, error)         { return nil, nil }
func (runPart) HandOver(context.Context) (*admin.Handed, error)    { return nil, nil }
func (p runPart) Serve(ctx context.Context, h *admin.Handed) error { h.Close(); return p.run(ctx) }
func (runPart) Close()                                             {}
