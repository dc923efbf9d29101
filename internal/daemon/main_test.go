package daemon

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv(mainArgsEnv); ok {
		runMainForTest(strings.Split(args, "\n"))
		return
	}
	// lumberjack starts one mill goroutine per file logger and never ends
	// it (documented on NewLogger); everything else must be gone.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("gopkg.in/natefinch/lumberjack%2ev2.(*Logger).millRun"))
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lineWriter sends every written line to a channel, so tests can wait for a
// log line with a deadline instead of sleeping. Writes after the test ended
// are dropped.
type lineWriter struct {
	mu     sync.Mutex
	lines  chan string
	closed bool
}

func newLineWriter(t *testing.T) *lineWriter {
	t.Helper()
	w := &lineWriter{lines: make(chan string, 100)}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.closed = true
	})
	return w
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return len(p), nil
	}
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		select {
		case w.lines <- l:
		default:
		}
	}
	return len(p), nil
}

// mainArgsEnv makes the test binary run Main with these arguments
// (newline-separated) instead of the tests; see TestMainProcess.
const mainArgsEnv = "DAEMON_TEST_MAIN_ARGS"

func runMainForTest(args []string) {
	os.Args = append([]string{"relay"}, args...)
	Main(Spec[*sampleConfig]{
		Name: "relay",
		Load: loadSample,
		Run: func(ctx context.Context, _ *sampleConfig, _ *logrus.Logger, _ *Level) error {
			fmt.Println("ready")
			<-ctx.Done()
			return nil
		},
	})
}
