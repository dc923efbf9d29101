// Package muxtest is the test kit of mux and of the packages built on it:
// real nodes started in-process on loopback with short timeouts, a logger
// that writes to t.Log, and polling with a deadline. It imports mux and
// nothing else of the project.
//
// Every logger of the kit writes to t.Log and goes quiet once the test has
// ended (goroutines still shutting down may log after it). The environment
// variable MUX_TEST_LOG sets the numeric level, as the daemons' levels go:
// 0 silent, 1 errors, 2 warnings (the default), 3 info, 4 debug, 5 trace.
// It is the project's only test-log switch, read here and nowhere else:
//
//	MUX_TEST_LOG=4 go test -run TestRelayLinksCut -v ./mux/
//
// Typical usage:
//
//	root, leaf := muxtest.StartPair(t, svc.Handle) // "epp" and "es-a", linked
//	c, err := leaf.Open(ctx, "epp", "events")
//
//	var stop func()
//	n := muxtest.StartNode(t, cfg,
//		muxtest.WithEntry(ln, "ssh", "gwp-a", "ssh"),
//		muxtest.WithStop(&stop))
//	muxtest.WaitFor(t, 10*time.Second, "the link to come up", func() bool { return len(n.Links()) == 1 })
//	stop() // before the test ends; otherwise the test's cleanup does it
package muxtest

import (
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// logEnv names the environment variable that sets the level of the test
// loggers.
const logEnv = "MUX_TEST_LOG"

// logLevel is the level that logEnv sets, read once.
var logLevel = sync.OnceValue(func() logrus.Level { return parseLevel(os.Getenv(logEnv)) })

// parseLevel maps the numeric level v to logrus's; anything but a number
// is the default, 2.
func parseLevel(v string) logrus.Level {
	n, err := strconv.Atoi(v)
	if err != nil {
		n = 2
	}
	switch {
	case n <= 0:
		return logrus.PanicLevel // nothing logs at panic level
	case n >= 5:
		return logrus.TraceLevel
	}
	return logrus.Level(n + 1) // 1 error, 2 warn, 3 info, 4 debug
}

// Log returns a logger that writes to t.Log at the level MUX_TEST_LOG sets
// and goes quiet when the test ends. Each call returns a new logger, so a
// test may add hooks to it.
func Log(t testing.TB) *logrus.Entry {
	t.Helper()
	lg := logrus.New()
	lg.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, TimestampFormat: "15:04:05.000"})
	lg.SetOutput(logWriter(t))
	lg.SetLevel(logLevel())
	return logrus.NewEntry(lg)
}

// logWriter returns a writer that passes each write to t.Log, one line a
// write, and drops what is written once the test has ended instead of
// making the testing package panic.
func logWriter(t testing.TB) io.Writer {
	t.Helper()
	w := &tbWriter{t: t}
	t.Cleanup(w.stop)
	return w
}

type tbWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *tbWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *tbWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// WaitFor polls cond until it holds, and fails the test after d.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
