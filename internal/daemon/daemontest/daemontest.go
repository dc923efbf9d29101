// Package daemontest helps tests of the daemons: a logger that writes to
// t.Log in the daemons' text format and goes quiet when the test ends.
//
// Typical usage, a relay run in-process with its log in the test's output
// (ExampleLogger):
//
//	func TestRelay(t *testing.T) {
//		cfg, err := chain.Load(chain.Relay, "testdata/relay.yaml")
//		if err != nil {
//			t.Fatal(err)
//		}
//		log := daemontest.Logger(t, daemon.LevelDebug)
//		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
//		defer cancel()
//		if err := chain.Run(ctx, cfg, log, chain.Hooks{}); err != nil {
//			t.Fatal(err)
//		}
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
