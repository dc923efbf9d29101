package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// waitLine waits for a line of w that contains want, failing after a deadline.
func waitLine(t *testing.T, w *lineWriter, want string) string {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		select {
		case l := <-w.lines:
			if strings.Contains(l, want) {
				return l
			}
		case <-deadline.C:
			t.Fatalf("no log line containing %q", want)
			return ""
		}
	}
}

func signalSelf(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(os.Getpid(), sig); err != nil {
		t.Fatal(err)
	}
}

func TestWatchSignals(t *testing.T) {
	w := newLineWriter(t)
	logger := &logrus.Logger{Out: w, Formatter: TextFormatter{}, Hooks: logrus.LevelHooks{}}
	lv := NewLevel(logger, 3)
	reloads := []struct {
		n   int
		err error
	}{{1, nil}, {0, errors.New("x.yaml:3: label: bad")}}
	reload := func() (int, error) {
		r := reloads[0]
		reloads = reloads[1:]
		return r.n, r.err
	}
	stop := WatchSignals(context.Background(), lv, reload)
	defer stop()

	signalSelf(t, syscall.SIGUSR1)
	waitLine(t, w, " 2 log: level changed from 3 to 4 [by=SIGUSR1]")
	if lv.Get() != 4 {
		t.Fatalf("level %d after SIGUSR1", lv.Get())
	}
	// One at a time: a signal sent while the same one is pending is merged.
	signalSelf(t, syscall.SIGUSR2)
	waitLine(t, w, "level changed from 4 to 3 [by=SIGUSR2]")
	signalSelf(t, syscall.SIGUSR2)
	waitLine(t, w, "level changed from 3 to 2 [by=SIGUSR2]")
	signalSelf(t, syscall.SIGHUP)
	waitLine(t, w, "level changed from 2 to 1 [by=SIGHUP]")
	signalSelf(t, syscall.SIGHUP)
	l := waitLine(t, w, "reload failed")
	if want := ` 1 log: reload failed, level kept [error="x.yaml:3: label: bad"]`; !strings.HasSuffix(l, want) {
		t.Fatalf("got %q, want suffix %q", l, want)
	}
	if lv.Get() != 1 {
		t.Fatalf("level %d after failed reload", lv.Get())
	}
	stop()
	stop() // idempotent
}

func TestWatchSignalsEndsWithContext(t *testing.T) {
	logger := &logrus.Logger{Out: &syncBuffer{}, Formatter: TextFormatter{}, Hooks: logrus.LevelHooks{}}
	ctx, cancel := context.WithCancel(context.Background())
	stop := WatchSignals(ctx, NewLevel(logger, 3), nil)
	cancel()
	stop() // returns only once the goroutine is gone; goleak checks the rest
}

// TestWatchSignalsEachCounts: SIGUSR1s that arrive while a SIGHUP reload
// is still running are all handled once it returns, each raising the level
// by one (a short queue used to drop those beyond its fourth).
func TestWatchSignalsEachCounts(t *testing.T) {
	w := newLineWriter(t)
	logger := &logrus.Logger{Out: w, Formatter: TextFormatter{}, Hooks: logrus.LevelHooks{}}
	lv := NewLevel(logger, 3)
	inReload, release := make(chan struct{}), make(chan struct{})
	stop := WatchSignals(context.Background(), lv, func() (int, error) {
		close(inReload)
		<-release
		return 0, nil
	})
	defer stop()
	// A channel of the test's own gets every signal the watcher's gets:
	// once a SIGUSR1 shows here, the watcher's queue holds it too, and the
	// next one cannot be merged into it.
	seen := make(chan os.Signal, 1)
	signal.Notify(seen, syscall.SIGUSR1)
	defer signal.Stop(seen)

	signalSelf(t, syscall.SIGHUP)
	select {
	case <-inReload:
	case <-time.After(10 * time.Second):
		t.Fatal("SIGHUP did not start a reload")
	}
	const raises = 5
	for i := 0; i < raises; i++ {
		signalSelf(t, syscall.SIGUSR1)
		select {
		case <-seen:
		case <-time.After(10 * time.Second):
			t.Fatalf("SIGUSR1 %d not received", i+1)
		}
	}
	close(release)
	waitLine(t, w, "level changed from 3 to 0 [by=SIGHUP]")
	for i := 0; i < raises; i++ {
		waitLine(t, w, fmt.Sprintf("level changed from %d to %d [by=SIGUSR1]", i, i+1))
	}
	if lv.Get() != raises {
		t.Fatalf("level %d after %d SIGUSR1, want %d", lv.Get(), raises, raises)
	}
}
