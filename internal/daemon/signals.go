package daemon

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// WatchSignals changes lv on signals until ctx is done or stop is called:
//
//   - SIGUSR1 raises the level by one (at most 5),
//   - SIGUSR2 lowers it by one (at least 0),
//   - SIGHUP sets it to the level reload returns (normally re-read from the
//     configuration file); a reload error is logged at level 1 and the level
//     is kept. reload may be nil: SIGHUP then does nothing but log.
//
// The signals are registered before WatchSignals returns, so a signal sent
// after it returns is never lost nor fatal. Each signal the process receives
// counts, even a burst that comes while a reload is in progress (up to
// signalQueue of them). Two signals of one kind sent back to back may
// reach the process as one, though: the kernel and Go's runtime keep one
// pending signal of each kind, and a second that comes before the first
// was taken (well under a millisecond) is merged into it. So an operator
// who wants two levels up waits for the first "level changed" line, or
// sets log.level and reloads. stop ends the watching goroutine and waits
// for it; it is idempotent and must be called (usually deferred).
func WatchSignals(ctx context.Context, lv *Level, reload func() (int, error)) (stop func()) {
	ch := make(chan os.Signal, signalQueue)
	signal.Notify(ch, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchSignals(ctx, ch, lv, reload)
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
			signal.Stop(ch)
		})
	}
}

// signalQueue is how many signals wait while one is handled (a reload
// reads the configuration); os/signal drops those that find it full.
const signalQueue = 64

// watchSignals is the loop of WatchSignals, named for stack dumps.
func watchSignals(ctx context.Context, ch <-chan os.Signal, lv *Level, reload func() (int, error)) {
	log := Component(lv.logger, "log")
	for {
		select {
		case <-ctx.Done():
			return
		case sig := <-ch:
			switch sig {
			case syscall.SIGUSR1:
				lv.Raise("SIGUSR1")
			case syscall.SIGUSR2:
				lv.Lower("SIGUSR2")
			case syscall.SIGHUP:
				if reload == nil {
					log.Warn("SIGHUP ignored: nothing to reload")
					continue
				}
				n, err := reload()
				if err != nil {
					log.WithError(err).Error("reload failed, level kept")
					continue
				}
				lv.Set(n, "SIGHUP")
			}
		}
	}
}
