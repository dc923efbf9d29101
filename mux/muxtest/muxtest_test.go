package muxtest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"go.uber.org/goleak"

	"github.com/relaychain/relaychain/mux"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseLevel(t *testing.T) {
	for v, want := range map[string]logrus.Level{
		"": logrus.WarnLevel, "x": logrus.WarnLevel, "-1": logrus.PanicLevel, "0": logrus.PanicLevel,
		"1": logrus.ErrorLevel, "2": logrus.WarnLevel, "3": logrus.InfoLevel, "4": logrus.DebugLevel,
		"5": logrus.TraceLevel, "9": logrus.TraceLevel,
	} {
		if got := parseLevel(v); got != want {
			t.Errorf("parseLevel(%q) = %s, want %s", v, got, want)
		}
	}
}

// recorder is a testing.TB that keeps what is logged and the cleanups.
type recorder struct {
	testing.TB
	lines    []string
	cleanups []func()
}

func (r *recorder) Helper()          {}
func (r *recorder) Log(args ...any)  { r.lines = append(r.lines, args[0].(string)) }
func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

func TestLogWriterQuietAfterTheTest(t *testing.T) {
	r := &recorder{TB: t}
	w := logWriter(r)
	if _, err := w.Write([]byte("routing: TELL command received\n")); err != nil {
		t.Fatal(err)
	}
	if len(r.lines) != 1 || r.lines[0] != "routing: TELL command received" {
		t.Fatalf("got %q", r.lines)
	}
	for _, f := range r.cleanups {
		f()
	}
	if n, err := w.Write([]byte("after the end\n")); n != 14 || err != nil {
		t.Fatalf("write after the end: %d, %v", n, err)
	}
	if len(r.lines) != 1 {
		t.Fatalf("logged after the end: %q", r.lines)
	}
}

// TestStartNodeWithStop: the stop function shuts the node down, its entry
// and link listeners closed, and may be called again.
func TestStartNodeWithStop(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var stop func()
	n := StartNode(t, mux.Config{Label: "epp", Role: mux.RoleRoot, Tuning: FastTuning(),
		Links: []mux.LinkConfig{{Peer: "es-a", Listen: "127.0.0.1:0"}}},
		WithEntry(ln, "events", "es-a", "events"), WithStop(&stop))
	link := n.LinkAddr("es-a").String()
	stop()
	stop()
	for _, addr := range []string{ln.Addr().String(), link} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Fatalf("%s still accepts after stop", addr)
		}
	}
	if err := n.Shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown after stop: %v", err)
	}
}
