// Package forwarder sends an eventsink's spooled events up the relay chain
// to the epproxy's event service, in batches with sequence numbers, and
// acknowledges the spool only for what the epproxy acknowledged. After any
// failure (no route, a link lost, the event server down) it opens a new
// session after a backoff and sends again everything not acknowledged; the
// epproxy's deduplication drops what it already delivered.
//
// Typical usage:
//
//	f := forwarder.New(node, sp, forwarder.Config{Sink: "es-a", Dest: "epp-main", Service: "events"}, log)
//	err := f.Run(ctx) // until ctx ends
package forwarder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/events"
	"github.com/relaychain/relaychain/eventsink/spool"
	"github.com/relaychain/relaychain/mux"
)

// Opener opens routed sessions; *mux.Node is one.
type Opener interface {
	Open(ctx context.Context, dest, service string) (*mux.Conn, error)
}

// Config says where events go and how they are batched.
type Config struct {
	Sink       string        // this eventsink's label, sent in every batch
	Dest       string        // the epproxy's label
	Service    string        // its event service
	BatchCount int           // events per batch; default 500
	BatchBytes int           // bytes per batch; default 1 MiB
	AckTimeout time.Duration // wait for an ack before starting over; default 30s
	RetryMin   time.Duration // first backoff step after a failure (mux.Backoff); default 500ms
	RetryMax   time.Duration // largest backoff step; default 30s
}

func (c Config) withDefaults() Config {
	if c.BatchCount <= 0 {
		c.BatchCount = 500
	}
	if c.BatchBytes <= 0 {
		c.BatchBytes = 1 << 20
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = 30 * time.Second
	}
	if c.RetryMin <= 0 {
		c.RetryMin = 500 * time.Millisecond
	}
	if c.RetryMax < c.RetryMin {
		c.RetryMax = max(30*time.Second, c.RetryMin)
	}
	return c
}

// Stats are the forwarder's counters.
type Stats struct {
	Batches  uint64 // batches acknowledged
	Events   uint64 // events acknowledged
	Sessions uint64 // sessions opened
	Failures uint64 // sessions that ended in a failure
}

// Forwarder is one eventsink's sender.
type Forwarder struct {
	open Opener
	sp   *spool.Spool
	cfg  Config
	log  *logrus.Entry
	lim  events.Limits

	batches, evs, sessions, failures atomic.Uint64
}

// New returns a forwarder reading sp and sending through open.
func New(open Opener, sp *spool.Spool, cfg Config, log *logrus.Entry) *Forwarder {
	cfg = cfg.withDefaults()
	return &Forwarder{open: open, sp: sp, cfg: cfg, log: log.WithField("component", "events"),
		lim: events.Limits{MaxBatchBytes: cfg.BatchBytes + cfg.BatchCount*events.EventOverhead + 512, MaxEvents: cfg.BatchCount}}
}

// Stats returns the counters.
func (f *Forwarder) Stats() Stats {
	return Stats{Batches: f.batches.Load(), Events: f.evs.Load(), Sessions: f.sessions.Load(), Failures: f.failures.Load()}
}

// Run forwards until ctx ends; it returns nil then, or the spool's error
// if the spool fails. After a failure it waits a step of mux.Backoff (RetryMin doubling up to
// RetryMax, with jitter); a session that got a batch acknowledged starts
// the steps again.
func (f *Forwarder) Run(ctx context.Context) error {
	backoff := mux.Backoff{Min: f.cfg.RetryMin, Max: f.cfg.RetryMax}
	for {
		progress, err := f.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, spool.ErrClosed) {
			return err
		}
		if err == nil || progress {
			backoff.Reset()
		}
		if err == nil {
			continue
		}
		wait := backoff.Next()
		f.failures.Add(1)
		f.log.WithError(err).Warnf("forwarding interrupted; sending again what is not acknowledged in %s", wait.Round(time.Millisecond))
		if !mux.SleepCtx(ctx, wait) {
			return nil
		}
	}
}

// session waits for events, opens a session and sends batches until
// something fails or ctx ends. It reports whether any batch was
// acknowledged.
func (f *Forwarder) session(ctx context.Context) (progress bool, err error) {
	next := f.sp.Stats().Acked + 1
	if err := f.sp.Wait(ctx, next); err != nil {
		return false, err
	}
	c, err := f.open.Open(ctx, f.cfg.Dest, f.cfg.Service)
	if err != nil {
		return false, fmt.Errorf("open session to %s/%s: %w", f.cfg.Dest, f.cfg.Service, err)
	}
	f.sessions.Add(1)
	log := f.log.WithField("id", c.Header().IDString())
	log.Debug("event session opened")
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer func() {
		stop()
		c.Close()
	}()
	for {
		recs, err := f.sp.Read(next, f.cfg.BatchCount, f.cfg.BatchBytes)
		if err != nil {
			return progress, err
		}
		if len(recs) == 0 {
			return progress, f.finish(ctx, c)
		}
		b := &events.Batch{Sink: f.cfg.Sink, Events: make([]events.Event, len(recs))}
		for i, r := range recs {
			b.Events[i] = events.Event{Seq: r.Seq, Time: r.Time, Framing: r.Framing, Source: r.Source, Data: r.Data}
		}
		setDeadline(ctx, c, time.Now().Add(f.cfg.AckTimeout))
		if err := events.WriteBatch(c, b, f.lim); err != nil {
			return progress, fmt.Errorf("send batch: %w", err)
		}
		ack, err := events.ReadAck(c)
		if err != nil {
			return progress, fmt.Errorf("wait for the ack of events %d..%d: %w", b.Events[0].Seq, b.LastSeq(), err)
		}
		if ack.UpTo != b.LastSeq() {
			return progress, fmt.Errorf("ack up to %d for a batch ending at %d", ack.UpTo, b.LastSeq())
		}
		setDeadline(ctx, c, time.Time{})
		if err := f.sp.Ack(ack.UpTo); err != nil {
			return progress, err
		}
		progress = true
		f.batches.Add(1)
		f.evs.Add(uint64(len(b.Events)))
		log.WithFields(logrus.Fields{"events": len(b.Events), "upto": ack.UpTo}).Debug("batch acknowledged")
		next = ack.UpTo + 1
	}
}

// finish ends an idle session cleanly: a half-close, then the epproxy's
// own end. Each burst of events gets its own session, so an idle eventsink
// holds no session open.
func (f *Forwarder) finish(ctx context.Context, c *mux.Conn) error {
	setDeadline(ctx, c, time.Now().Add(f.cfg.AckTimeout))
	if err := c.CloseWrite(); err != nil {
		return err
	}
	var one [1]byte
	if _, err := c.Read(one[:]); !errors.Is(err, io.EOF) {
		if err == nil {
			err = errors.New("unexpected bytes from the event service")
		}
		return err
	}
	return nil
}

// setDeadline sets c's deadline to t, unless ctx has ended: then to now. The
// deadline that ctx's end set (session's AfterFunc) must not be replaced by
// a later one, or Run would wait for the ack timeout after its cancel.
func setDeadline(ctx context.Context, c *mux.Conn, t time.Time) {
	_ = c.SetDeadline(t)
	if ctx.Err() != nil {
		_ = c.SetDeadline(time.Now())
	}
}
