package daemontest

import (
	"strings"
	"testing"

	"github.com/relaychain/relaychain/internal/daemon"
)

// recorder is a testing.TB that keeps what is logged.
type recorder struct {
	testing.TB
	lines    []string
	cleanups []func()
}

func (r *recorder) Helper()          {}
func (r *recorder) Log(args ...any)  { r.lines = append(r.lines, args[0].(string)) }
func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

func TestLogger(t *testing.T) {
	r := &recorder{TB: t}
	log := Logger(r, daemon.LevelInfo)
	daemon.Component(log, "routing").WithField("l", "relay-dmz1").Info("WHO command received")
	log.Debug("hidden")
	if len(r.lines) != 1 || !strings.HasSuffix(r.lines[0], " 3 routing: WHO command received [l=relay-dmz1]") {
		t.Fatalf("got %q", r.lines)
	}
	for _, f := range r.cleanups {
		f()
	}
	log.Error("after the end")
	if len(r.lines) != 1 {
		t.Fatalf("logged after cleanup: %q", r.lines)
	}
}
