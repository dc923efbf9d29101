package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of the measurements, besides their counts.
const (
	openTimeout  = 10 * time.Second // one session open, as a client waits for it
	rttTimeout   = 60 * time.Second // all the round trips
	opensTimeout = 5 * time.Minute  // the opens test
	holdTimeout  = 5 * time.Minute  // opening the held sessions
	holdSettle   = time.Second      // between the last held open and the memory reading
	quietTimeout = 15 * time.Second // for the relays to end the readiness probe's session
	rttMessage   = 64               // bytes of a round trip message
	rttWarmup    = 100              // round trips before the timed ones
	openPayload  = 16               // bytes each opened session echoes
)

// Transfer is one throughput test.
type Transfer struct {
	Streams int
	Upload  bool          // client -> backend; else backend -> client
	Bytes   int64         // all streams together
	Wall    time.Duration // from the first byte sent to the last one received
	CPU     time.Duration // of the three relay processes together
}

// MBps is the throughput in MB (1e6 bytes) per second.
func (t Transfer) MBps() float64 { return float64(t.Bytes) / 1e6 / t.Wall.Seconds() }

// CPUPerGB is the relays' CPU seconds per GB (1e9 bytes) moved.
func (t Transfer) CPUPerGB() float64 { return t.CPU.Seconds() / (float64(t.Bytes) / 1e9) }

// Sample is what one round measured on one freshly started system.
type Sample struct {
	System string // sysTLS, sysPlain or sysRef
	Round  int
	PIDs   []int // the system's processes (relays and backend)

	Transfers []Transfer // 1 stream up, down; Streams up, down

	RTTs         int // round trips timed
	RTT50, RTT99 time.Duration

	Opens        int // sessions opened, exchanged and closed
	OpenFailures int
	OpensWall    time.Duration
	OpensCPU     time.Duration // of the three relay processes

	Held              int   // idle sessions held open together
	Base, Holding     []mem // each relay process, before and while holding
	FDsBase, FDsAfter int   // descriptors of the three, before and at the last reading after close
	AfterRSS          []uint64
}

// OpensPerSec is the rate of session opens.
func (s Sample) OpensPerSec() float64 { return float64(s.Opens) / s.OpensWall.Seconds() }

// measure runs every test on s, in order, into smp. The held sessions
// come first, on processes that have carried only the readiness probe:
// after the throughput tests a relay's heap keeps megabytes of freed,
// still resident pages that new sessions would fill unseen, and the
// growth per session would depend on what ran before.
func measure(ctx context.Context, o Options, s *system, smp *Sample) error {
	if err := hold(ctx, o, s, smp); err != nil {
		return fmt.Errorf("held sessions: %w", err)
	}
	total := int64(o.MiB) << 20
	// Warm up: buffers, pools and heap sizes as after some traffic.
	for _, up := range []bool{true, false} {
		if _, err := transfer(ctx, s, 1, up, max(total/16, 1<<20)); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	for _, streams := range []int{1, o.Streams} {
		for _, up := range []bool{true, false} {
			t, err := transfer(ctx, s, streams, up, total)
			if err != nil {
				return fmt.Errorf("throughput, %d sessions, %s: %w", streams, direction(up), err)
			}
			smp.Transfers = append(smp.Transfers, t)
			o.logf("  %d session(s) %-8s %7.0f MB/s  %5.2f CPU-s/GB", streams, direction(up), t.MBps(), t.CPUPerGB())
		}
	}
	if err := roundTrips(ctx, s, o.RTTs, smp); err != nil {
		return fmt.Errorf("round trips: %w", err)
	}
	o.logf("  round trip of %d bytes: p50 %s, p99 %s (%d)", rttMessage, smp.RTT50, smp.RTT99, smp.RTTs)
	if err := opens(ctx, s, o.Opens, o.OpenClients, smp); err != nil {
		return fmt.Errorf("opens: %w", err)
	}
	o.logf("  opens: %.0f/s, %.0f CPU-us each, %d failed", smp.OpensPerSec(), perOpenMicros(*smp), smp.OpenFailures)
	return nil
}

func direction(up bool) string {
	if up {
		return "upload"
	}
	return "download"
}

// transfer moves total bytes in one direction over streams sessions
// opened beforehand, started together.
func transfer(ctx context.Context, s *system, streams int, up bool, total int64) (Transfer, error) {
	per := total / int64(streams)
	op := byte(opDownload)
	if up {
		op = opUpload
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range streams {
		c, err := dialSession(ctx, s.entry, op, uint64(per), nil, openTimeout)
		if err != nil {
			return Transfer{}, err
		}
		conns = append(conns, c)
	}
	// At least 10 MB/s, or it is broken.
	deadline := time.Now().Add(30*time.Second + time.Duration(total/10e6)*time.Second)
	for _, c := range conns {
		_ = c.SetDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() {
		for _, c := range conns {
			c.Close()
		}
	})
	defer stop()
	cpu0, err := s.cpu()
	if err != nil {
		return Transfer{}, err
	}
	start := time.Now()
	errs := make([]error, streams)
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			if up {
				errs[i] = sendAll(c, per)
			} else {
				errs[i] = receiveAll(c, per)
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	cpu1, err := s.cpu()
	if err != nil {
		return Transfer{}, err
	}
	if err := errors.Join(errs...); err != nil {
		return Transfer{}, errors.Join(ctx.Err(), err)
	}
	return Transfer{Streams: streams, Upload: up, Bytes: per * int64(streams), Wall: wall, CPU: cpu1 - cpu0}, nil
}

// roundTrips times n round trips of rttMessage bytes on one echo session,
// after rttWarmup untimed ones, within rttTimeout.
func roundTrips(ctx context.Context, s *system, n int, smp *Sample) error {
	c, err := dialSession(ctx, s.entry, opEcho, 0, nil, openTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	deadline := time.Now().Add(rttTimeout)
	_ = c.SetDeadline(deadline)
	msg := make([]byte, rttMessage)
	for i := range msg {
		msg[i] = byte('a' + i%26)
	}
	lat := make([]time.Duration, 0, n)
	for i := 0; i < rttWarmup+n && time.Now().Before(deadline); i++ {
		t0 := time.Now()
		if _, err := c.Write(msg); err != nil {
			return errors.Join(ctx.Err(), err)
		}
		if err := readEcho(c, msg); err != nil {
			return errors.Join(ctx.Err(), err)
		}
		if i >= rttWarmup {
			lat = append(lat, time.Since(t0))
		}
	}
	if len(lat) == 0 {
		return fmt.Errorf("no round trip within %s", rttTimeout)
	}
	slices.Sort(lat)
	smp.RTTs = len(lat)
	smp.RTT50, smp.RTT99 = percentile(lat, 50), percentile(lat, 99)
	return nil
}

// percentile is the nearest-rank p-th percentile of sorted.
func percentile(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100 // ceil(n*p/100)
	return sorted[max(i-1, 0)]
}

// opens has clients clients open n sessions in all, each exchanging
// openPayload bytes and closing, within opensTimeout.
func opens(ctx context.Context, s *system, n, clients int, smp *Sample) error {
	payload := []byte("0123456789abcdef")[:openPayload]
	var next, ok, failed atomic.Int64
	var firstErr error
	var once sync.Once
	deadline := time.Now().Add(opensTimeout)
	cpu0, err := s.cpu()
	if err != nil {
		return err
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for next.Add(1) <= int64(n) && ctx.Err() == nil && time.Now().Before(deadline) {
				if err := echoOnce(ctx, s.entry, payload, openTimeout); err != nil {
					failed.Add(1)
					once.Do(func() { firstErr = err })
					continue
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	smp.OpensWall = time.Since(start)
	cpu1, err := s.cpu()
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	smp.Opens, smp.OpenFailures, smp.OpensCPU = int(ok.Load()), int(failed.Load()), cpu1-cpu0
	if smp.Opens+smp.OpenFailures < n {
		return fmt.Errorf("%d of %d sessions within %s", smp.Opens+smp.OpenFailures, n, opensTimeout)
	}
	// A few failures are reported in the table; many mean a broken run.
	if smp.OpenFailures > n/100 {
		return fmt.Errorf("%d of %d opens failed, the first: %w", smp.OpenFailures, n, firstErr)
	}
	return nil
}
