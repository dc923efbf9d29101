package mux_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// longEcho is a session to an echo service kept open across a handover:
// each round trip writes a chunk and reads it back.
type longEcho struct {
	c     *mux.Conn
	bytes int
}

func openLongEcho(t testing.TB, from *mux.Node, dest string) *longEcho {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := from.Open(ctx, dest, "echo")
	if err != nil {
		t.Fatalf("open %s/echo from %s: %v", dest, from.Label(), err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &longEcho{c: c}
}

// roundTrip writes 32 KiB of random bytes and checks that they come back.
func (e *longEcho) roundTrip(t testing.TB) {
	t.Helper()
	msg := make([]byte, 32<<10)
	_, _ = rand.Read(msg)
	_ = e.c.SetDeadline(time.Now().Add(10 * time.Second))
	errc := make(chan error, 1)
	go func() {
		_, err := e.c.Write(msg)
		errc <- err
	}()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(e.c, got); err != nil {
		t.Fatalf("long session after %d bytes: %v", e.bytes, err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("long session write after %d bytes: %v", e.bytes, err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("long session after %d bytes: the echo differs", e.bytes)
	}
	e.bytes += len(msg)
}

// end closes the session cleanly: the echo's end comes back.
func (e *longEcho) end(t testing.TB) {
	t.Helper()
	if err := e.c.CloseWrite(); err != nil {
		t.Fatalf("close write: %v", err)
	}
	if rest, err := io.ReadAll(e.c); err != nil || len(rest) != 0 {
		t.Fatalf("long session end: %d bytes, %v", len(rest), err)
	}
	_ = e.c.Close()
}

// TestHandOver: a relay between a root and a leaf hands its place over to
// a successor process (here a second node with the same label and the
// listening socket of the first). A session up and a session down that
// were open before go on moving bytes through the predecessor; new
// sessions, both ways, go through at every moment; the root and the leaf
// end with their links to the successor, and the predecessor drains
// without aborting a session and stops.
// The relay dials its parent, or its parent dials it (then the parent
// dials the successor when told HANDOVER, and the successor has two
// listening sockets to take over).
func TestHandOver(t *testing.T) {
	t.Run("relay dials", func(t *testing.T) { testHandOver(t, false) })
	t.Run("parent dials", func(t *testing.T) { testHandOver(t, true) })
}

func testHandOver(t *testing.T, parentDials bool) {
	checkReleased(t)
	tun := muxtest.FastTuning()
	echo := map[string]mux.Service{"echo": {Handler: echoHandler}}
	relayCfg := mux.Config{Label: "relay", Role: mux.RoleRelay, Tuning: tun, Links: []mux.LinkConfig{
		{Peer: "root", Parent: true},
		{Peer: "leaf", Listen: freeAddr(t)},
	}}
	rootLink := mux.LinkConfig{Peer: "relay", Listen: "127.0.0.1:0"}
	if parentDials {
		relayCfg.Links[0].Listen = freeAddr(t)
		rootLink = mux.LinkConfig{Peer: "relay", Dial: relayCfg.Links[0].Listen}
	}
	root := muxtest.StartNode(t, mux.Config{Label: "root", Role: mux.RoleRoot, Tuning: tun, Services: echo,
		Links: []mux.LinkConfig{rootLink}})
	if !parentDials {
		relayCfg.Links[0].Dial = root.LinkAddr("relay").String()
	}
	var stopOld func()
	oldLog, oldSink := captureLog(t)
	oldLog.Logger.SetLevel(logrus.InfoLevel) // the control messages received are logged at level 3
	old := muxtest.StartNode(t, relayCfg, muxtest.WithStop(&stopOld), muxtest.WithLog(oldLog))
	answered := func(peer string) bool {
		_, ok := oldSink.find(func(r logRecord) bool { return r.Message == "DRAIN reply command received" && r.Data["l"] == peer })
		return ok
	}
	leaf := muxtest.StartNode(t, mux.Config{Label: "leaf", Role: mux.RoleLeaf, Tuning: tun, Services: echo,
		Links: []mux.LinkConfig{{Peer: "relay", Parent: true, Dial: relayCfg.Links[1].Listen}}})
	muxtest.WaitFor(t, 10*time.Second, "the routes", func() bool {
		return root.Routes()["leaf"] == "relay" && len(leaf.PathToRoot()) == 2
	})

	up, down := openLongEcho(t, leaf, "root"), openLongEcho(t, root, "leaf")
	up.roundTrip(t)
	down.roundTrip(t)

	files, err := old.HandOver()
	if err != nil {
		t.Fatalf("hand over: %v", err)
	}
	wantFiles := 1
	if parentDials {
		wantFiles = 2
	}
	if len(files) != wantFiles {
		t.Fatalf("handed over %v, want %d listening sockets", files, wantFiles)
	}
	inherited := map[string]net.Listener{}
	for _, f := range files {
		ln, err := net.FileListener(f.File)
		_ = f.File.Close()
		if err != nil {
			t.Fatalf("listener from the file: %v", err)
		}
		inherited[f.Addr] = ln
	}
	succCfg := relayCfg
	succCfg.Inherited = inherited
	succ := muxtest.StartNode(t, succCfg)

	drained := make(chan int, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		drained <- old.Drain(ctx)
	}()
	// New sessions go through at every moment, both ways, until the root
	// and the leaf both answered the predecessor's DRAIN: they send new
	// sessions through the successor.
	opened := 0
	for i := 0; ; i++ {
		echoThrough(t, leaf, "root")
		echoThrough(t, root, "leaf")
		opened += 2
		if i%10 == 0 {
			up.roundTrip(t)
			down.roundTrip(t)
		}
		if answered("leaf") && answered("root") {
			break
		}
		if i > 2000 {
			t.Fatalf("the successor has links %v after %d sessions", succ.Links(), opened)
		}
	}
	t.Logf("%d new sessions through the handover", opened)
	if got := succ.Links(); len(got) != 2 {
		t.Fatalf("the successor links to %v, want the root and the leaf", got)
	}
	// The sessions in flight finish through the predecessor.
	up.roundTrip(t)
	down.roundTrip(t)
	if n := old.Sessions(); n != 2 {
		t.Fatalf("the predecessor carries %d sessions, want the 2 long ones", n)
	}
	up.end(t)
	down.end(t)
	select {
	case left := <-drained:
		if left != 0 {
			t.Fatalf("the predecessor drained with %d sessions left", left)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the predecessor did not drain")
	}
	stopOld()
	// Through the successor alone.
	muxtest.WaitFor(t, 10*time.Second, "the root and the leaf linked to the successor only", func() bool {
		return len(root.Links()) == 1 && len(leaf.Links()) == 1 && root.Routes()["leaf"] == "relay"
	})
	echoThrough(t, leaf, "root")
	echoThrough(t, root, "leaf")
	muxtest.WaitFor(t, 10*time.Second, "the successor's sessions released", func() bool { return succ.Sessions() == 0 })
}
