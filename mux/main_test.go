package mux_test

import (
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"go.uber.org/goleak"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// TestMain fails the package when any goroutine is left once every test has
// run. No goroutine is ignored: the package starts no global one, and one
// of ours left behind is a bug to fix, not to hide.
func TestMain(m *testing.M) {
	// Make the runtime open its network poller descriptors now, so that
	// they are part of the first test's descriptor baseline.
	if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		_ = ln.Close()
	}
	mux.SetTestKit(muxtest.Log, muxtest.FastTuning)
	goleak.VerifyTestMain(m)
}

// checkReleased makes the test fail unless, once every other cleanup of
// the test ran (node shutdowns, servers closed), no goroutine started
// during the test is still running and the process holds no more sockets
// than when the test started. Call it first in a test, so that its cleanup
// runs last. Tests that use it must not be parallel.
func checkReleased(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	base := openSockets()
	t.Cleanup(func() {
		var err error
		deadline := time.Now().Add(10 * time.Second)
		for {
			if err = goleak.Find(ignore); err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			t.Errorf("goroutines left after the test: %v", err)
		}
		if base < 0 {
			return
		}
		// A socket is released when its goroutine closes it; poll
		// briefly. No slack: every socket of the test must be closed.
		n := openSockets()
		for n > base && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
			n = openSockets()
		}
		if n > base {
			t.Errorf("sockets: %d open after the test, %d before\n%s", n, base, listFDs())
		}
	})
}

// openSockets counts the process's open socket descriptors, or returns -1
// where /proc/self/fd does not exist (not Linux). Other descriptors are
// not counted: the runtime keeps pipes for splice(2) in a pool that only
// the garbage collector empties.
func openSockets() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(target, "socket:") {
			n++
		}
	}
	return n
}

// listFDs describes the open descriptors, for a failure message.
func listFDs() string {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, e := range ents {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		b.WriteString(e.Name() + " -> " + target + "\n")
	}
	return b.String()
}

// logSink is a logrus hook that keeps every entry a node logs, so a test
// can assert what was logged, at which level and with which error.
type logSink struct {
	mu      sync.Mutex
	entries []logRecord
}

type logRecord struct {
	Level   logrus.Level
	Message string
	Data    logrus.Fields
}

// err is the error attached with WithError, or nil.
func (r logRecord) err() error {
	e, _ := r.Data[logrus.ErrorKey].(error)
	return e
}

func (s *logSink) Levels() []logrus.Level { return logrus.AllLevels }

func (s *logSink) Fire(e *logrus.Entry) error {
	data := make(logrus.Fields, len(e.Data))
	for k, v := range e.Data {
		data[k] = v
	}
	s.mu.Lock()
	s.entries = append(s.entries, logRecord{Level: e.Level, Message: e.Message, Data: data})
	s.mu.Unlock()
	return nil
}

// find returns the first record that match accepts.
func (s *logSink) find(match func(logRecord) bool) (logRecord, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.entries {
		if match(r) {
			return r, true
		}
	}
	return logRecord{}, false
}

// waitLog waits until a record that match accepts was logged.
func (s *logSink) waitLog(t testing.TB, what string, match func(logRecord) bool) logRecord {
	t.Helper()
	var rec logRecord
	muxtest.WaitFor(t, 10*time.Second, "log: "+what, func() bool {
		var ok bool
		rec, ok = s.find(match)
		return ok
	})
	return rec
}

// errorWith matches an error-level record whose error text contains every
// one of parts. (The message text is not matched: the reason is in the
// error.)
func errorWith(parts ...string) func(logRecord) bool {
	return func(r logRecord) bool {
		if r.Level != logrus.ErrorLevel || r.err() == nil {
			return false
		}
		for _, p := range parts {
			if !strings.Contains(r.err().Error(), p) {
				return false
			}
		}
		return true
	}
}

// captureLog is testLog with every entry also kept in the returned sink.
func captureLog(t testing.TB) (*logrus.Entry, *logSink) {
	t.Helper()
	log := muxtest.Log(t)
	sink := &logSink{}
	log.Logger.AddHook(sink)
	return log, sink
}
