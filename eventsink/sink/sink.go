// Package sink is the eventsink daemon beside its node: it opens the spool,
// starts the intake listeners (TCP and UDP, one framing each) that append
// every event to it, and the forwarder that sends the spool up the chain
// to the epproxy's event service. When its context ends it stops them:
// the intake takes no new connection and reads on what each sender has
// sent until it is quiet (for at most the shutdown grace period), the
// forwarder stops at once (what the intake still spools is sent after the
// next start), then the spool closes. In a rolling upgrade it hands its
// intake sockets, open connections and spool to its successor
// (handover.go): nothing is lost and nothing is read twice.
//
// Typical usage, as eventsink/main.go does it:
//
//	daemon.Main(chain.Spec(chain.EventSink, chain.Hooks{Part: sink.Part}))
//
// or in steps, to learn the listeners' addresses (a test listening on
// 127.0.0.1:0):
//
//	s, err := sink.New(cfg, node, log) // opens the spool and the listeners
//	if err != nil { ... }
//	addr := s.Addr("eif")
//	err = s.Serve(ctx) // until ctx ends; then closes the listeners and the spool
package sink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"github.com/relaychain/relaychain/events"
	"github.com/relaychain/relaychain/eventsink/forwarder"
	"github.com/relaychain/relaychain/eventsink/intake"
	"github.com/relaychain/relaychain/eventsink/spool"
	"github.com/relaychain/relaychain/internal/chain"
	"github.com/relaychain/relaychain/mux"
)

// Sink is one eventsink's spool, intake listeners and forwarder.
type Sink struct {
	cfg     *chain.Config
	log     *logrus.Entry
	open    forwarder.Opener
	sp      *spool.Spool
	servers []listener // in the configuration's order
	fwd     *forwarder.Forwarder

	served    atomic.Bool
	closeOnce sync.Once

	// The forwarder's own context, ended with Serve's or by a handover
	// to a successor (handover.go), and its end.
	fwdCtx  context.Context
	stopFwd context.CancelFunc
	fwdDone chan struct{}
	handing atomic.Bool
	serving atomic.Bool   // Serve has begun: the spool is open
	served1 chan struct{} // closed when serving is set
}

// listener is one intake listener, its name in the configuration, and
// the key it is handed over under (handover.go).
type listener struct {
	name string
	key  string
	srv  *intake.Server
}

// New opens the spool of cfg's events section and its intake listeners,
// and prepares the forwarder, which opens its sessions through open (the
// node). Nothing is served until Serve. On error, everything New opened is
// closed again.
func New(cfg *chain.Config, open forwarder.Opener, log *logrus.Entry) (*Sink, error) {
	s, err := prepare(cfg, open, nil, log)
	if err != nil {
		return nil, err
	}
	if err := s.openSpool(nil); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// prepare opens the intake listeners, taking those inherited names
// (events/NAME, from a predecessor), but not the spool.
func prepare(cfg *chain.Config, open forwarder.Opener, inherited *chain.Inherited, log *logrus.Entry) (*Sink, error) {
	ev := cfg.Events
	s := &Sink{cfg: cfg, log: log, open: open, fwdDone: make(chan struct{}), served1: make(chan struct{})}
	s.fwdCtx, s.stopFwd = context.WithCancel(context.Background())
	for _, l := range ev.Listeners {
		f, err := events.ParseFraming(l.Framing)
		if err != nil {
			s.Close()
			return nil, err
		}
		ic := intake.Config{
			Network:       l.Protocol,
			Addr:          l.Listen,
			Framing:       f,
			MaxEvent:      int(ev.MaxEventBytes),
			MaxConnsPerIP: l.MaxConnsPerSource,
			IdleTimeout:   l.IdleTimeout,
			Handler: func(framing events.Framing, source string, data []byte) error {
				_, err := s.sp.Append(framing, source, data)
				return err
			},
			Log: log.WithFields(logrus.Fields{"component": "intake", "listener": l.Name}),
		}
		key := inheritKey(l)
		inherit(&ic, inherited, key)
		srv, err := intake.New(ic)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("events listener %s: %w", l.Name, err)
		}
		s.servers = append(s.servers, listener{l.Name, key, srv})
	}
	return s, nil
}

// openSpool opens the spool, and prepares the forwarder. With wait (a
// successor's context), it tries again while another process still holds
// the spool (a predecessor whose handover did not release it: it does at
// its exit), until wait ends.
func (s *Sink) openSpool(wait context.Context) error {
	ev := s.cfg.Events
	opts := spool.Options{
		SegmentSize: int64(ev.Spool.SegmentBytes),
		MaxBytes:    int64(ev.Spool.MaxBytes),
		MaxRecord:   int(ev.MaxEventBytes) + 512,
		Log:         s.log.WithField("component", "spool"),
		// A new spool numbers from the clock, so a spool wiped by hand
		// never reuses numbers the epproxy has seen.
		FirstSeq: uint64(time.Now().UnixMicro()),
	}
	if ev.Spool.Fsync == "interval" {
		opts.Sync = spool.Interval(ev.Spool.FsyncInterval)
	}
	if ev.Spool.WhenFull == "drop-oldest" {
		opts.Full = spool.DropOldest
	}
	sp, err := spool.Open(ev.Spool.Dir, opts)
	for tries := 1; errors.Is(err, spool.ErrLocked) && wait != nil; tries++ {
		if tries%200 == 0 { // every 10 s
			s.log.WithField("component", "spool").Warnf("spool %s still held by the previous process: waiting for it to let go", ev.Spool.Dir)
		}
		if !mux.SleepCtx(wait, 50*time.Millisecond) {
			break
		}
		sp, err = spool.Open(ev.Spool.Dir, opts)
	}
	if err != nil {
		return fmt.Errorf("spool %s: %w", ev.Spool.Dir, err)
	}
	st := sp.Stats()
	s.log.WithFields(logrus.Fields{"component": "spool", "dir": ev.Spool.Dir, "pending": st.NextSeq - 1 - st.Acked}).Info("spool open")
	s.sp = sp
	s.fwd = forwarder.New(s.open, sp, forwarder.Config{
		Sink:       s.cfg.Label,
		Dest:       ev.Dest,
		Service:    ev.Service,
		BatchCount: ev.BatchEvents,
		BatchBytes: int(ev.BatchBytes),
		AckTimeout: ev.AckTimeout,
		RetryMin:   s.cfg.Tuning.ReconnectMin,
		RetryMax:   s.cfg.Tuning.ReconnectMax,
	}, s.log)
	return nil
}

// Addr returns the address the intake listener called name listens on, or
// nil if there is no such listener.
func (s *Sink) Addr(name string) net.Addr {
	for _, l := range s.servers {
		if l.name == name {
			return l.srv.Addr()
		}
	}
	return nil
}

// Serve runs the intake listeners and the forwarder until ctx ends, then
// stops them in order and closes the spool: Serve closes the Sink. It
// returns nil after a clean stop, or the forwarder's error (a failed
// spool). Serve may be called once.
func (s *Sink) Serve(ctx context.Context) error {
	if !s.served.CompareAndSwap(false, true) {
		return errors.New("sink: Serve called twice")
	}
	defer s.Close()
	s.serving.Store(true)
	close(s.served1)

	g, gctx := errgroup.WithContext(ctx)
	serveCtx, stopServe := context.WithCancel(context.Background())
	defer stopServe()
	for _, l := range s.servers {
		g.Go(func() error { return l.srv.Serve(serveCtx) })
	}
	g.Go(func() error {
		<-gctx.Done()
		// Stop taking events, letting what senders sent be spooled, for
		// at most the grace period.
		s.shutdownIntake()
		stopServe()
		return nil
	})
	defer context.AfterFunc(gctx, s.stopFwd)()
	g.Go(func() error {
		defer close(s.fwdDone)
		err := s.fwd.Run(s.fwdCtx)
		if err != nil && !errors.Is(err, context.Canceled) && !s.handing.Load() {
			return fmt.Errorf("forwarder: %w", err)
		}
		return nil
	})
	err := g.Wait()
	fs := s.fwd.Stats()
	ss := s.sp.Stats()
	s.log.WithFields(logrus.Fields{
		"component": "events", "forwarded": fs.Events, "batches": fs.Batches,
		"spooled": ss.Appended, "refused_full": ss.RefusedFull, "dropped_full": ss.DroppedFull,
		"pending": ss.NextSeq - 1 - ss.Acked,
	}).Info("eventsink stopped")
	return err
}

// shutdownIntake stops every intake listener at once, and lets each
// read on what its senders sent until they are quiet, all within one
// shutdown grace period.
func (s *Sink) shutdownIntake() {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownGrace)
	defer cancel()
	var wg sync.WaitGroup
	for _, l := range s.servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = l.srv.Shutdown(ctx)
		}()
	}
	wg.Wait()
}

// Close closes the intake listeners and the spool of a Sink that is not
// served (Serve closes its Sink when it returns). It is idempotent.
func (s *Sink) Close() {
	s.closeOnce.Do(func() {
		s.shutdownIntake()
		if s.sp != nil {
			_ = s.sp.Close()
		}
	})
}
