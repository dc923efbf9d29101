package main

// The memory of the relays per held session and after the sessions
// close: hold, and the figures made of it.

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// spliceHeldMax is the most sessions the two splice relays hold: each
// session takes six descriptors in each (two sockets, and a pipe for each
// direction's splice), and a process may have 20,000 on a usual system.
const spliceHeldMax = 3000

// hold opens o.Held idle echo sessions (each echoes one byte first), reads
// the relays' memory, closes them all and reads the relays' RSS at each
// o.Settle after the close.
func hold(ctx context.Context, o Options, s *system, smp *Sample) error {
	if err := waitQuiet(ctx, s); err != nil {
		return err
	}
	var err error
	if smp.Base, smp.FDsBase, err = s.memory(); err != nil {
		return err
	}
	held := o.Held
	if s.kind == sysSplice {
		held = min(held, spliceHeldMax)
	}
	conns := make([]net.Conn, held)
	closeAll := func() {
		for i, c := range conns {
			if c != nil {
				c.Close()
				conns[i] = nil
			}
		}
	}
	defer closeAll()
	var next, failed atomic.Int64
	var firstErr error
	var once sync.Once
	deadline := time.Now().Add(holdTimeout)
	var wg sync.WaitGroup
	for range o.OpenClients {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(deadline) {
				i := next.Add(1) - 1
				if i >= int64(len(conns)) {
					return
				}
				c, err := dialSession(ctx, s.entry, opEcho, 0, []byte{'h'}, openTimeout)
				if err == nil {
					if err = readEcho(c, []byte{'h'}); err != nil {
						c.Close()
					}
				}
				if err != nil {
					failed.Add(1)
					once.Do(func() { firstErr = err })
					return
				}
				_ = c.SetDeadline(time.Time{})
				conns[i] = c
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if failed.Load() > 0 {
		return fmt.Errorf("%d sessions failed to open (of %d), the first: %w", failed.Load(), held, firstErr)
	}
	if next.Load() < int64(held) {
		return fmt.Errorf("not every session opened within %s", holdTimeout)
	}
	smp.Held = held
	if err := sleep(ctx, holdSettle); err != nil {
		return err
	}
	if err := s.check(); err != nil {
		return err
	}
	if smp.Holding, _, err = s.memory(); err != nil {
		return err
	}
	o.logf("  %d held sessions: RSS %.1f KiB, PSS %.1f KiB each (three processes)", smp.Held, perHeld(*smp, false)/1024, perHeld(*smp, true)/1024)
	closeAll()
	closed := time.Now()
	for _, d := range o.Settle {
		if err := sleep(ctx, time.Until(closed.Add(d))); err != nil {
			return err
		}
		ms, fds, err := s.memory()
		if err != nil {
			return err
		}
		smp.AfterRSS = append(smp.AfterRSS, sumMem(ms).RSS)
		smp.FDsAfter = fds
		o.logf("  %s after close: RSS %.1f MiB (before holding %.1f), %d descriptors (before %d)",
			d, float64(sumMem(ms).RSS)/(1<<20), float64(sumMem(smp.Base).RSS)/(1<<20), fds, smp.FDsBase)
	}
	return nil
}

// waitQuiet waits until the sessions before (the readiness probe's) have
// ended in the relays: until their descriptors stay the same for half a second, at
// most quietTimeout.
func waitQuiet(ctx context.Context, s *system) error {
	deadline := time.Now().Add(quietTimeout)
	last, same := -1, 0
	for same < 5 && time.Now().Before(deadline) {
		_, fds, err := s.memory()
		if err != nil {
			return err
		}
		if fds == last {
			same++
		} else {
			last, same = fds, 0
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func sumMem(ms []mem) mem {
	var s mem
	for _, m := range ms {
		s.RSS += m.RSS
		s.PSS += m.PSS
	}
	return s
}

// perHeld is the growth of the three relays' RSS (or PSS) per held
// session, in bytes.
func perHeld(s Sample, pss bool) float64 {
	if s.Held == 0 {
		return 0
	}
	b, h := sumMem(s.Base), sumMem(s.Holding)
	if pss {
		return (float64(h.PSS) - float64(b.PSS)) / float64(s.Held)
	}
	return (float64(h.RSS) - float64(b.RSS)) / float64(s.Held)
}

// perHeldNode is the growth of relay process i's RSS per held session.
func perHeldNode(s Sample, i int) float64 {
	if s.Held == 0 || i >= len(s.Base) || i >= len(s.Holding) {
		return 0
	}
	return (float64(s.Holding[i].RSS) - float64(s.Base[i].RSS)) / float64(s.Held)
}

func perOpenMicros(s Sample) float64 {
	if s.Opens == 0 {
		return 0
	}
	return float64(s.OpensCPU.Microseconds()) / float64(s.Opens)
}
