// Package daemontest helps tests of the daemons: a logger that writes to
// t.Log in the daemons' text format and goes quiet when the test ends.
//
// Typical usage:
//
//	func TestRelay(t *testing.T) {
//		log := daemontest.Logger(t, daemon.LevelDebug)
//		srv := relay.New(cfg, daemon.Component(log, "relay"))
//		...
//	}
package daemontest

import (
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/internal/daemon"
)

// Logger returns a logger at numeric level n whose lines go to tb.Log.
// Lines written after the test has ended (by goroutines still shutting
// down) are dropped instead of making the testing package panic.
func Logger(tb testing.TB, n int) *logrus.Logger {
	tb.Helper()
	w := &tbWriter{tb: tb}
	tb.Cleanup(w.close)
	return &logrus.Logger{
		Out:       w,
		Formatter: daemon.TextFormatter{},
		Hooks:     make(logrus.LevelHooks),
		Level:     daemon.LogrusLevel(n),
	}
}

type tbWriter struct {
	mu   sync.Mutex
	tb   testing.TB
	done bool
}

func (w *tbWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.tb.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *tbWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
}
