package admin

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"go.uber.org/goleak"

	"github.com/relaychain/relaychain/mux"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func quietLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(&bytes.Buffer{})
	return logrus.NewEntry(l)
}

func serve(t *testing.T, path string, st mux.NodeStatus) *Socket {
	t.Helper()
	s, err := ListenSocket(path, func() mux.NodeStatus { return st }, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve()
	}()
	t.Cleanup(func() {
		_ = s.Close()
		<-done
	})
	return s
}

func TestSocketQuery(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.sock")
	want := mux.NodeStatus{Label: "relay-x", Role: "relay", Sessions: 3,
		Links:    []mux.LinkStatus{{Peer: "epp", Side: "parent", Up: true, RTT: time.Millisecond, BytesIn: 10, BytesOut: 20}},
		Networks: 3, Serves: []string{"10.1.0.0/16", "*.x.example"}, Stats: mux.Stats{DeniedResolved: 2}}
	s := serve(t, path, want)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket: %v, %v; want mode 0600", fi, err)
	}
	got, err := Query(path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got.Label != want.Label || got.Sessions != 3 || len(got.Links) != 1 || got.Links[0] != want.Links[0] {
		t.Errorf("got %+v, want %+v", got, want)
	}
	var out bytes.Buffer
	if err := WriteSummary(&out, got); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"relay-x (relay)", "epp", "parent", "up", "1ms", "10B", "20B", "sessions: 3 active",
		"networks: 3 served here and below (this node: 10.1.0.0/16, *.x.example)",
		"refused resolved addresses: 2 sessions"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("summary has no %q:\n%s", w, out.String())
		}
	}

	// A second instance does not take a socket that answers.
	if _, err := ListenSocket(path, nil, quietLog()); err == nil || !strings.Contains(err.Error(), "another instance") {
		t.Errorf("second listen: %v", err)
	}
	_ = s.Close()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after Close: %v, want it removed", err)
	}
	if _, err := Query(path, time.Second); !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "not running: no socket at "+path) {
		t.Errorf("query without a socket: %v", err)
	}
}

func TestSocketStaleReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.sock")
	// A socket file whose daemon is gone.
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	_ = ln.Close()
	if _, err := Query(path, time.Second); !errors.Is(err, ErrNotRunning) {
		t.Errorf("query of a stale socket: %v", err)
	}
	serve(t, path, mux.NodeStatus{Label: "relay-x"})
	if st, err := Query(path, 5*time.Second); err != nil || st.Label != "relay-x" {
		t.Errorf("query after the stale socket was replaced: %+v, %v", st, err)
	}
	// A file that is not a socket is left alone.
	other := filepath.Join(t.TempDir(), "x.sock")
	if err := os.WriteFile(other, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ListenSocket(other, nil, quietLog()); err == nil {
		t.Error("listen over a regular file succeeded")
	}
}
