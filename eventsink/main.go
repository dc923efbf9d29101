// Command eventsink takes events in an outer zone (log adapters sending
// EIF events ending in END, syslog or plain text lines, over TCP and UDP),
// keeps each one in a durable on-disk spool before it counts as received,
// and forwards them up the relay chain to the epproxy, which delivers them
// to the event server. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"github.com/relaychain/relaychain/events"
	"github.com/relaychain/relaychain/eventsink/forwarder"
	"github.com/relaychain/relaychain/eventsink/intake"
	"github.com/relaychain/relaychain/eventsink/spool"
	"github.com/relaychain/relaychain/internal/chain"
	"github.com/relaychain/relaychain/internal/daemon"
	"github.com/relaychain/relaychain/mux"
)

func main() { daemon.Main(chain.Spec(chain.EventSink, chain.Hooks{Run: run})) }

// run opens the spool, starts the intake listeners and the forwarder, and
// stops them in order when ctx ends: intake first (no new events), then the
// forwarder, then the spool.
func run(ctx context.Context, cfg *chain.Config, n *mux.Node, log *logrus.Entry) error {
	ev := cfg.Events
	opts := spool.Options{
		SegmentSize: int64(ev.Spool.SegmentBytes),
		MaxBytes:    int64(ev.Spool.MaxBytes),
		MaxRecord:   int(ev.MaxEventBytes) + 512,
		Log:         log.WithField("component", "spool"),
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
	if err != nil {
		return fmt.Errorf("spool %s: %w", ev.Spool.Dir, err)
	}
	defer sp.Close()
	st := sp.Stats()
	log.WithFields(logrus.Fields{"component": "spool", "dir": ev.Spool.Dir, "pending": st.NextSeq - 1 - st.Acked}).Info("spool open")

	var servers []*intake.Server
	closeAll := func() {
		for _, s := range servers {
			_ = s.Shutdown(context.Background())
		}
	}
	for _, l := range ev.Listeners {
		f, err := events.ParseFraming(l.Framing)
		if err != nil {
			closeAll()
			return err
		}
		s, err := intake.New(intake.Config{
			Network:       l.Protocol,
			Addr:          l.Listen,
			Framing:       f,
			MaxEvent:      int(ev.MaxEventBytes),
			MaxConnsPerIP: l.MaxConnsPerSource,
			IdleTimeout:   l.IdleTimeout,
			Handler: func(framing events.Framing, source string, data []byte) error {
				_, err := sp.Append(framing, source, data)
				return err
			},
			Log: log.WithFields(logrus.Fields{"component": "intake", "listener": l.Name}),
		})
		if err != nil {
			closeAll()
			return fmt.Errorf("events listener %s: %w", l.Name, err)
		}
		servers = append(servers, s)
	}

	fwd := forwarder.New(n, sp, forwarder.Config{
		Sink:       cfg.Label,
		Dest:       ev.Dest,
		Service:    ev.Service,
		BatchCount: ev.BatchEvents,
		BatchBytes: int(ev.BatchBytes),
		AckTimeout: ev.AckTimeout,
		RetryMin:   cfg.Tuning.ReconnectMin,
		RetryMax:   cfg.Tuning.ReconnectMax,
	}, log)

	g, gctx := errgroup.WithContext(ctx)
	serveCtx, stopServe := context.WithCancel(context.Background())
	defer stopServe()
	for _, s := range servers {
		s := s
		g.Go(func() error { return s.Serve(serveCtx) })
	}
	g.Go(func() error {
		<-gctx.Done()
		// Stop taking events, letting each sender's events already read be
		// spooled, for at most the grace period.
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
		defer cancel()
		for _, s := range servers {
			_ = s.Shutdown(sctx)
		}
		stopServe()
		return nil
	})
	g.Go(func() error {
		err := fwd.Run(gctx)
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("forwarder: %w", err)
		}
		return nil
	})
	err = g.Wait()
	fs := fwd.Stats()
	ss := sp.Stats()
	log.WithFields(logrus.Fields{
		"component": "events", "forwarded": fs.Events, "batches": fs.Batches,
		"spooled": ss.Appended, "refused_full": ss.RefusedFull, "dropped_full": ss.DroppedFull,
		"pending": ss.NextSeq - 1 - ss.Acked,
	}).Info("eventsink stopped")
	return err
}
