package mux_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// echoRound writes msg on c and reads it back, within 10s.
func echoRound(t testing.TB, c net.Conn, msg string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	defer func() { _ = c.SetDeadline(time.Time{}) }()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write %q: %v", msg, err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read back %q: %v", msg, err)
	}
	if string(got) != msg {
		t.Fatalf("read back %q, want %q", got, msg)
	}
}

// dialEcho connects to an entry and checks one round trip.
func dialEcho(t testing.TB, addr net.Addr) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	echoRound(t, c, "hello")
	return c
}

// waitAborted waits until c reads an end (the session was aborted or
// closed under it) and fails the test after 10s.
func waitAborted(t testing.TB, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [16]byte
	if n, err := c.Read(b[:]); err == nil {
		t.Fatalf("read %q from a session that should have ended", b[:n])
	} else if isTimeout(err) {
		t.Fatalf("session still open: %v", err)
	}
}

// goroutinesIn counts the goroutines running the function fn (a frame of
// fn itself, not of a closure it made).
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	k := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte(fn+"(")) {
			k++
		}
	}
	return k
}

// waitGoroutines waits until want goroutines run fn, and fails the test
// after 10s.
func waitGoroutines(t testing.TB, fn string, want int) {
	t.Helper()
	muxtest.WaitFor(t, 10*time.Second, fmt.Sprintf("%d goroutines in %s", want, fn), func() bool { return goroutinesIn(fn) == want })
}

func TestReconfigureServicesAndEntries(t *testing.T) {
	checkReleased(t)
	keep, gone, added := startEcho(t), startEcho(t), startEcho(t)
	rootCfg := muxtest.WithTLS(t, mux.Config{Label: "epp", Role: mux.RoleRoot, Tuning: muxtest.FastTuning(),
		Services: map[string]mux.Service{
			"keep": {Addrs: []string{keep.ln.Addr().String()}},
			"gone": {Addrs: []string{gone.ln.Addr().String()}},
		},
		Links: []mux.LinkConfig{{Peer: "gwp", Listen: "127.0.0.1:0"}}})
	root := muxtest.StartNode(t, rootCfg)
	eKeep, eGone := listenEntry(t), listenEntry(t)
	leaf := muxtest.StartNode(t, mux.Config{Label: "gwp", Role: mux.RoleLeaf, Tuning: muxtest.FastTuning(),
		Links: []mux.LinkConfig{{Peer: "epp", Parent: true, Dial: root.LinkAddr("gwp").String()}}},
		muxtest.WithEntry(eKeep, "e-keep", "epp", "keep"), muxtest.WithEntry(eGone, "e-gone", "epp", "gone"))
	muxtest.WaitFor(t, 10*time.Second, "the leaf's route", func() bool { return root.Routes()["gwp"] == "gwp" })

	onKeep := dialEcho(t, leaf.EntryAddr("e-keep"))
	onGone := dialEcho(t, leaf.EntryAddr("e-gone"))
	goneAddr := leaf.EntryAddr("e-gone").String()
	entryLoops := goroutinesIn("mux.(*Node).acceptEntry")

	// The root: "gone" removed, "new" added, "keep" as it was.
	next := rootCfg
	next.Services = map[string]mux.Service{
		"keep": {Addrs: []string{keep.ln.Addr().String()}},
		"new":  {Addrs: []string{added.ln.Addr().String()}},
	}
	changes, err := root.Reconfigure(next, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(changes)
	if want := []string{"service gone removed", "service new added"}; !slices.Equal(changes, want) {
		t.Errorf("changes %q, want %q", changes, want)
	}
	// The leaf: e-gone removed, e-new added.
	if !leaf.RemoveEntry("e-gone", time.Minute) {
		t.Fatal("RemoveEntry: no entry e-gone")
	}
	if c, err := net.DialTimeout("tcp", goneAddr, 5*time.Second); err == nil {
		_ = c.Close()
		t.Fatal("the removed entry still accepts connections")
	}
	leaf.AddEntry(listenEntry(t), "e-new", "epp", "new")

	// The session on the removed service is aborted once the grace ended;
	// the one on the service kept goes on.
	waitAborted(t, onGone)
	echoRound(t, onKeep, "still flowing")
	onNew := dialEcho(t, leaf.EntryAddr("e-new"))
	echoRound(t, onNew, "through the new entry and service")
	if _, err := leaf.Open(context.Background(), "epp", "gone"); !errors.Is(err, mux.ErrDenied) {
		t.Errorf("open of the removed service: %v, want denied", err)
	}
	waitGoroutines(t, "mux.(*Node).acceptEntry", entryLoops)
	if added.accepted.Load() != 1 {
		t.Errorf("the added service's target accepted %d connections, want 1", added.accepted.Load())
	}

	// What cannot change live is refused whole.
	bad := next
	bad.Label = "epp2"
	if _, err := root.Reconfigure(bad, time.Second); !errors.Is(err, mux.ErrRestartNeeded) || !strings.Contains(err.Error(), "label epp -> epp2") {
		t.Errorf("label change: %v, want a restart needed", err)
	}
	_ = onKeep.Close()
	_ = onNew.Close()
	assertDrained(t, root, leaf)
	gone.waitClosed(t, 1)
}

func TestReconfigureLinks(t *testing.T) {
	checkReleased(t)
	echo := startEcho(t)
	rootCfg := muxtest.WithTLS(t, mux.Config{Label: "epp", Role: mux.RoleRoot, Tuning: muxtest.FastTuning(),
		Services: map[string]mux.Service{"echo": {Addrs: []string{echo.ln.Addr().String()}}},
		Links:    []mux.LinkConfig{{Peer: "gwp-a", Listen: "127.0.0.1:0"}}})
	root := muxtest.StartNode(t, rootCfg)
	aAddr := root.LinkAddr("gwp-a").String()
	entryA := listenEntry(t)
	leafA := muxtest.StartNode(t, mux.Config{Label: "gwp-a", Role: mux.RoleLeaf, Tuning: muxtest.FastTuning(),
		Links: []mux.LinkConfig{{Peer: "epp", Parent: true, Dial: aAddr}}},
		muxtest.WithEntry(entryA, "e", "epp", "echo"))
	muxtest.WaitFor(t, 10*time.Second, "gwp-a's route", func() bool { return root.Routes()["gwp-a"] == "gwp-a" })
	held := dialEcho(t, leafA.EntryAddr("e"))

	// Add a link to gwp-b on a port of its own.
	withB := rootCfg
	bAddr := freeAddr(t)
	withB.Links = append(slices.Clone(rootCfg.Links), mux.LinkConfig{Peer: "gwp-b", Listen: bAddr})
	changes, err := root.Reconfigure(withB, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(changes, []string{"link to gwp-b added (child, listen " + bAddr + ")"}) {
		t.Errorf("changes %q", changes)
	}
	entryB := listenEntry(t)
	leafB := muxtest.StartNode(t, mux.Config{Label: "gwp-b", Role: mux.RoleLeaf, Tuning: muxtest.FastTuning(),
		Links: []mux.LinkConfig{{Peer: "epp", Parent: true, Dial: root.LinkAddr("gwp-b").String()}}},
		muxtest.WithEntry(entryB, "e", "epp", "echo"))
	muxtest.WaitFor(t, 10*time.Second, "gwp-b's route", func() bool { return root.Routes()["gwp-b"] == "gwp-b" })
	onB := dialEcho(t, leafB.EntryAddr("e"))
	echoRound(t, held, "gwp-a unchanged")

	// Remove gwp-a: its session goes on, new ones are refused, and the
	// link closes when the session is done.
	onlyB := rootCfg
	onlyB.Links = []mux.LinkConfig{withB.Links[1]}
	if changes, err = root.Reconfigure(onlyB, time.Minute); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(changes, []string{"link to gwp-a removed"}) {
		t.Errorf("changes %q", changes)
	}
	echoRound(t, held, "draining")
	if _, err := leafA.Open(context.Background(), "epp", "echo"); err == nil {
		t.Error("a new session through the removed link was opened")
	}
	echoRound(t, onB, "gwp-b unchanged")
	if c, err := net.DialTimeout("tcp", aAddr, 5*time.Second); err == nil {
		_ = c.Close()
		t.Error("the removed link's port still accepts connections")
	}
	_ = held.Close()
	muxtest.WaitFor(t, 10*time.Second, "the removed link to close", func() bool {
		return !slices.Contains(root.Links(), "gwp-a") && len(leafA.Links()) == 0
	})
	waitGoroutines(t, "mux.(*Node).acceptLinks", 1) // gwp-b's port

	// Remove gwp-b with a short grace: its session is aborted.
	none := rootCfg
	none.Links = nil
	if _, err = root.Reconfigure(none, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	waitAborted(t, onB)
	muxtest.WaitFor(t, 10*time.Second, "the link to gwp-b to close", func() bool { return len(root.Links()) == 0 })
	waitGoroutines(t, "mux.(*Node).acceptLinks", 0)
	assertDrained(t, root)
}

func TestReconfigureDialledParent(t *testing.T) {
	checkReleased(t)
	echo := startEcho(t)
	r1 := muxtest.StartNode(t, mux.Config{Label: "epp", Role: mux.RoleRoot, Tuning: muxtest.FastTuning(),
		Services: map[string]mux.Service{"echo": {Addrs: []string{echo.ln.Addr().String()}}},
		Links:    []mux.LinkConfig{{Peer: "gwp", Listen: "127.0.0.1:0"}}})
	leafCfg := muxtest.WithTLS(t, mux.Config{Label: "gwp", Role: mux.RoleLeaf, Tuning: muxtest.FastTuning(),
		Links: []mux.LinkConfig{{Peer: "epp", Parent: true, Dial: r1.LinkAddr("gwp").String()}}})
	leaf := muxtest.StartNode(t, leafCfg)
	muxtest.WaitFor(t, 10*time.Second, "the leaf's path", func() bool { return len(leaf.PathToRoot()) == 1 })
	if got := goroutinesIn("mux.(*Node).dialLoop"); got != 1 {
		t.Fatalf("%d dial loops, want 1", got)
	}
	// The parent's address changes: removed and added. The new one
	// points at a port nobody serves; the old link drains (no session)
	// and closes, and one dial loop is left, the new one.
	moved := leafCfg
	moved.Links = []mux.LinkConfig{{Peer: "epp", Parent: true, Dial: freeAddr(t)}}
	tun := moved.Tuning
	tun.OpenTimeout = 3 * time.Second
	moved.Tuning = tun
	changes, err := leaf.Reconfigure(moved, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || !strings.HasPrefix(changes[0], "link to epp changed (parent, dial ") {
		t.Errorf("changes %q", changes)
	}
	muxtest.WaitFor(t, 10*time.Second, "the old parent link to close", func() bool { return len(leaf.Links()) == 0 })
	waitGoroutines(t, "mux.(*Node).dialLoop", 1)
}

// TestReconfigureSharedPort adds a child on the port another child uses
// (one port may serve several links), then removes the first: the port
// stays open for the second, whose link stays up on the same connection,
// and the removed child is refused there.
func TestReconfigureSharedPort(t *testing.T) {
	checkReleased(t)
	echo := startEcho(t)
	log, sink := captureLog(t)
	rootCfg := muxtest.WithTLS(t, mux.Config{Label: "epp", Role: mux.RoleRoot, Tuning: muxtest.FastTuning(),
		Services: map[string]mux.Service{"echo": {Addrs: []string{echo.ln.Addr().String()}}},
		Links:    []mux.LinkConfig{{Peer: "gwp-a", Listen: "127.0.0.1:0"}}})
	root := muxtest.StartNode(t, rootCfg, muxtest.WithLog(log))
	port := root.LinkAddr("gwp-a").String()
	leafA := muxtest.StartNode(t, mux.Config{Label: "gwp-a", Role: mux.RoleLeaf, Tuning: muxtest.FastTuning(),
		Links: []mux.LinkConfig{{Peer: "epp", Parent: true, Dial: port}}})
	muxtest.WaitFor(t, 10*time.Second, "gwp-a's route", func() bool { return root.Routes()["gwp-a"] == "gwp-a" })

	both := rootCfg
	both.Links = append(slices.Clone(rootCfg.Links), mux.LinkConfig{Peer: "gwp-c", Listen: "127.0.0.1:0"})
	if _, err := root.Reconfigure(both, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := root.LinkAddr("gwp-c"); got == nil || got.String() != port {
		t.Fatalf("gwp-c's port %v, want gwp-a's %s", got, port)
	}
	leafC := muxtest.StartNode(t, mux.Config{Label: "gwp-c", Role: mux.RoleLeaf, Tuning: muxtest.FastTuning(),
		Links: []mux.LinkConfig{{Peer: "epp", Parent: true, Dial: port}}})
	muxtest.WaitFor(t, 10*time.Second, "gwp-c's route", func() bool { return root.Routes()["gwp-c"] == "gwp-c" })
	upSince := leafC.Status().Links[0].Since

	onlyC := rootCfg
	onlyC.Links = []mux.LinkConfig{both.Links[1]}
	if _, err := root.Reconfigure(onlyC, time.Minute); err != nil {
		t.Fatal(err)
	}
	muxtest.WaitFor(t, 10*time.Second, "gwp-a's link to close", func() bool { return len(leafA.Links()) == 0 })
	sink.waitLog(t, "gwp-a refused on the shared port", func(r logRecord) bool {
		return r.Message == "link connection refused" && strings.Contains(fmt.Sprint(r.Data["error"]), "gwp-a")
	})
	c, err := leafC.Open(context.Background(), "epp", "echo")
	if err != nil {
		t.Fatalf("a session from gwp-c after gwp-a was removed: %v", err)
	}
	echoRound(t, c, "gwp-c unchanged")
	_ = c.Close()
	if st := leafC.Status().Links[0]; !st.Up || !st.Since.Equal(upSince) {
		t.Errorf("gwp-c's link: up %v since %s, want up since %s", st.Up, st.Since, upSince)
	}
	assertDrained(t, root, leafC)
}

// TestReconfigureTuning lowers max_sessions on a running leaf: the session
// open goes on, a second one is refused by the new cap.
func TestReconfigureTuning(t *testing.T) {
	checkReleased(t)
	echo := startEcho(t)
	root := muxtest.StartNode(t, mux.Config{Label: "epp", Role: mux.RoleRoot, Tuning: muxtest.FastTuning(),
		Services: map[string]mux.Service{"echo": {Addrs: []string{echo.ln.Addr().String()}}},
		Links:    []mux.LinkConfig{{Peer: "gwp", Listen: "127.0.0.1:0"}}})
	leafCfg := muxtest.WithTLS(t, mux.Config{Label: "gwp", Role: mux.RoleLeaf, Tuning: muxtest.FastTuning(),
		Links: []mux.LinkConfig{{Peer: "epp", Parent: true, Dial: root.LinkAddr("gwp").String()}}})
	leaf := muxtest.StartNode(t, leafCfg)
	muxtest.WaitFor(t, 10*time.Second, "the leaf's path", func() bool { return len(leaf.PathToRoot()) == 1 })
	first, err := leaf.Open(context.Background(), "epp", "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()

	capped := leafCfg
	capped.Tuning.MaxSessions = 1
	changes, err := leaf.Reconfigure(capped, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 0 {
		t.Errorf("changes %q for a tuning change, want none (the caller logs tuning)", changes)
	}
	echoRound(t, first, "open before the cap")
	if _, err := leaf.Open(context.Background(), "epp", "echo"); err == nil || !strings.Contains(err.Error(), "session limit of 1 reached") {
		t.Errorf("a second session under max_sessions 1: %v, want refused", err)
	}
	_ = first.Close()
	assertDrained(t, root, leaf)
	c, err := leaf.Open(context.Background(), "epp", "echo")
	if err != nil {
		t.Fatalf("a session once the first ended: %v", err)
	}
	echoRound(t, c, "under the cap")
	_ = c.Close()
}
