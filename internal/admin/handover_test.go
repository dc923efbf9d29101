package admin

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
)

// serveHandingOver serves a socket at path whose node hands over the
// listening sockets give returns.
func serveHandingOver(t *testing.T, path string, give func() ([]mux.ListenerFile, error), commit func() (*Handed, error)) {
	t.Helper()
	s, err := ListenSocket(path, func() mux.NodeStatus { return mux.NodeStatus{} }, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if give != nil {
		s.OnHandover(give, commit)
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
}

// TestTakeOver: the successor gets the running node's listening socket
// under its address, and accepts on it a connection made to that
// address; the running node's admin socket is gone from the path, which
// the successor can bind.
func TestTakeOver(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.sock")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	serveHandingOver(t, path, func() ([]mux.ListenerFile, error) {
		f, err := ln.(*net.TCPListener).File()
		if err != nil {
			return nil, err
		}
		return []mux.ListenerFile{{Addr: addr, File: f}}, nil
	}, func() (*Handed, error) {
		return nil, ln.Close() // the running node stops accepting
	})
	tk, err := TakeOver(path, 5*time.Second)
	if err != nil {
		t.Fatalf("take over: %v", err)
	}
	defer tk.Close()
	if err := tk.Ready(5 * time.Second); err != nil {
		t.Fatalf("ready: %v", err)
	}
	got := tk.Listeners
	if len(got) != 1 || got[addr] == nil {
		t.Fatalf("took over %v, want the listener of %s", got, addr)
	}
	taken := got[addr]
	defer taken.Close()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the running node's admin socket is still at %s: %v", path, err)
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial the handed-over address: %v", err)
	}
	defer c.Close()
	_ = taken.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	sc, err := taken.Accept()
	if err != nil {
		t.Fatalf("accept on the handed-over socket: %v", err)
	}
	defer sc.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	_ = sc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(sc, b); err != nil || b[0] != 'x' {
		t.Fatalf("read %q, %v", b, err)
	}
}

// TestTakeOverRefused: a node that does not hand over says so, and keeps
// its socket.
func TestTakeOverRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.sock")
	serveHandingOver(t, path, nil, nil)
	if tk, err := TakeOver(path, 5*time.Second); err == nil || !strings.Contains(err.Error(), "does not hand over") {
		if tk != nil {
			tk.Close()
		}
		t.Fatalf("take over from a node that does not hand over: %v", err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("the admin socket went: %v", err)
	}
	if tk, err := TakeOver(filepath.Join(t.TempDir(), "none.sock"), time.Second); !errors.Is(err, ErrNotRunning) {
		if tk != nil {
			tk.Close()
		}
		t.Fatalf("take over with no socket: %v", err)
	}
}
