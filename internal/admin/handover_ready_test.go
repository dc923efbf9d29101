package admin

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
)

// givingListener serves a socket at path whose node hands over copies of
// a fresh loopback listener, which it closes on commit. It returns the
// listener and the count of commits.
func givingListener(t *testing.T, path string) (net.Listener, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	var commits atomic.Int32
	serveHandingOver(t, path, func() ([]mux.ListenerFile, error) {
		f, err := ln.(*net.TCPListener).File()
		if err != nil {
			return nil, err
		}
		return []mux.ListenerFile{{Addr: ln.Addr().String(), File: f}}, nil
	}, func() (*Handed, error) {
		commits.Add(1)
		return nil, ln.Close()
	})
	return ln, &commits
}

// acceptsOn dials ln's address and checks that ln itself accepts it.
func acceptsOn(t *testing.T, ln net.Listener) {
	t.Helper()
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", ln.Addr(), err)
	}
	defer c.Close()
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	sc, err := ln.Accept()
	if err != nil {
		t.Fatalf("the running node does not accept on its listener: %v", err)
	}
	_ = sc.Close()
}

// TestTakeOverAbandoned: a successor that goes away before it is ready
// leaves the running node as it was: not committed, accepting on its
// listener, its admin socket back at the path and answering.
func TestTakeOverAbandoned(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.sock")
	ln, commits := givingListener(t, path)
	tk, err := TakeOver(path, 5*time.Second)
	if err != nil {
		t.Fatalf("take over: %v", err)
	}
	for _, l := range tk.Listeners {
		_ = l.Close()
	}
	// The successor failed (a port of a new entry in use, say).
	tk.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := Query(path, time.Second)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the admin socket did not come back: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := commits.Load(); n != 0 {
		t.Fatalf("committed %d times for a successor that never was ready", n)
	}
	acceptsOn(t, ln)
	// And it can hand over again, to a successor that gets ready.
	tk2, err := TakeOver(path, 5*time.Second)
	if err != nil {
		t.Fatalf("take over again: %v", err)
	}
	defer tk2.Close()
	if err := tk2.Ready(5 * time.Second); err != nil {
		t.Fatalf("ready: %v", err)
	}
	if n := commits.Load(); n != 1 {
		t.Fatalf("%d commits after ready, want 1", n)
	}
	for _, l := range tk2.Listeners {
		_ = l.Close()
	}
}

// TestTakeOverSilentSuccessor: a successor that never says it is ready is
// given up after ReadyTimeout; its late ready is refused.
func TestTakeOverSilentSuccessor(t *testing.T) {
	defer func(d time.Duration) { ReadyTimeout = d }(ReadyTimeout)
	ReadyTimeout = 300 * time.Millisecond
	path := filepath.Join(t.TempDir(), "relay.sock")
	ln, commits := givingListener(t, path)
	tk, err := TakeOver(path, 5*time.Second)
	if err != nil {
		t.Fatalf("take over: %v", err)
	}
	defer tk.Close()
	for _, l := range tk.Listeners {
		_ = l.Close()
	}
	// The successor's admin socket is not bound here: the running node
	// takes the path back once it gives up.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := Query(path, time.Second); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the admin socket did not come back after the ready timeout")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := tk.Ready(5 * time.Second); err == nil {
		t.Fatal("a ready after the timeout was confirmed")
	}
	if n := commits.Load(); n != 0 {
		t.Fatalf("committed %d times", n)
	}
	acceptsOn(t, ln)
}

// TestTakeOverTwice: while a successor gets ready, a second upgrader
// (connected before the admin socket went) is refused with a clear
// reason, and the first one goes through.
func TestTakeOverTwice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.sock")
	_, commits := givingListener(t, path)
	second, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	tk, err := TakeOver(path, 5*time.Second)
	if err != nil {
		t.Fatalf("take over: %v", err)
	}
	defer tk.Close()
	for _, l := range tk.Listeners {
		_ = l.Close()
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the admin socket is still at %s while a successor gets ready: %v", path, err)
	}
	_ = second.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := second.Write([]byte("handover\n")); err != nil {
		t.Fatal(err)
	}
	var ans handoverAnswer
	if err := json.NewDecoder(second).Decode(&ans); err != nil {
		t.Fatalf("answer to the second upgrade: %v", err)
	}
	if !strings.Contains(ans.Error, "an upgrade is in progress") || len(ans.Addrs) != 0 {
		t.Fatalf("second upgrade answered %+v, want refused as in progress", ans)
	}
	if err := tk.Ready(5 * time.Second); err != nil {
		t.Fatalf("the first upgrade, ready: %v", err)
	}
	if n := commits.Load(); n != 1 {
		t.Fatalf("%d commits, want 1", n)
	}
	select {
	case <-tk.Gone():
		t.Fatal("the predecessor counts as gone while it runs")
	default:
	}
}
