package mux_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// The session of these tests: the leaf's entry client sends upBytes, the
// root's target answers downBytes, and then the session ends one way or
// another. Every hop must log the same id, outcome, who and bytes.
const upBytes, downBytes = 10, 30

// endLine is what one hop said about how the session ended.
type endLine struct {
	id, outcome, who string
	up, down         int64
}

func (e endLine) String() string {
	return fmt.Sprintf("id=%s %s who=%q up=%d down=%d", e.id, e.outcome, e.who, e.up, e.down)
}

// isEnd matches a hop's last line about a session.
func isEnd(r logRecord) bool {
	return r.Level == logrus.InfoLevel && r.Data["component"] == "session" &&
		(r.Message == "closed" || r.Message == "aborted")
}

// waitEnds waits until every node of tc logged the end of a session and
// returns what each said, by label.
func waitEnds(t *testing.T, tc *tchain) map[string]endLine {
	t.Helper()
	out := map[string]endLine{}
	for label, sink := range tc.logs {
		r := sink.waitLog(t, label+" logs the session's end", isEnd)
		who, _ := r.Data["who"].(string)
		id, _ := r.Data["id"].(string)
		up, _ := r.Data["up"].(int64)
		down, _ := r.Data["down"].(int64)
		out[label] = endLine{id: id, outcome: r.Message, who: who, up: up, down: down}
	}
	return out
}

// assertEnds checks that all four hops said want (the id aside, which must
// be one and the same).
func assertEnds(t *testing.T, tc *tchain, want endLine) string {
	t.Helper()
	ends := waitEnds(t, tc)
	if len(ends) != 4 {
		t.Fatalf("ends logged by %d nodes, want 4: %v", len(ends), ends)
	}
	id := ends["leaf"].id
	if id == "" {
		t.Fatalf("the entry logged no session id: %v", ends)
	}
	want.id = id
	for label, e := range ends {
		if e != want {
			t.Errorf("%s: %v, want %v", label, e, want)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	// Each node counts the session under the outcome it logged.
	muxtest.WaitFor(t, 10*time.Second, "every node to count the session as "+want.outcome, func() bool {
		for _, n := range tc.nodes() {
			if n.SessionsEnded()[want.outcome] != 1 {
				return false
			}
		}
		return true
	})
	return id
}

// steps returns what a node logged at level 4 about session id: each
// message, with the side of a half-close.
func steps(sink *logSink, id string) []string {
	sink.mu.Lock()
	defer sink.mu.Unlock()
	var out []string
	for _, r := range sink.entries {
		if r.Data["id"] != id || r.Level != logrus.DebugLevel {
			continue
		}
		m := r.Message
		if by, ok := r.Data["by"]; ok {
			m += " by " + fmt.Sprint(by)
		}
		out = append(out, m)
	}
	return out
}

// tcpTarget accepts connections on loopback and hands them out.
func tcpTarget(t *testing.T) (addr string, conns <-chan *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *net.TCPConn, 4)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ch <- c.(*net.TCPConn)
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
		close(ch)
		for c := range ch {
			_ = c.Close()
		}
	})
	return ln.Addr().String(), ch
}

// logChain starts the test chain at level 5 with the root offering
// service "t" at a TCP target and the leaf an entry to it.
func logChain(t *testing.T, tun mux.Tuning) (tc *tchain, entry string, conns <-chan *net.TCPConn) {
	t.Helper()
	return logChainWith(t, tun, false)
}

// logChainWith is logChain, with relay1's links through fault proxies
// when proxied.
func logChainWith(t *testing.T, tun mux.Tuning, proxied bool) (tc *tchain, entry string, conns <-chan *net.TCPConn) {
	t.Helper()
	addr, conns := tcpTarget(t)
	ln := listenEntry(t)
	tc = startTestChain(t, tchainOpts{trace: true, proxied: proxied, chainOpts: chainOpts{
		tuning:       tun,
		rootServices: map[string]mux.Service{"t": {Addrs: []string{addr}}},
		leafOpts:     []muxtest.Option{muxtest.WithEntry(ln, "t", "root", "t")},
	}})
	return tc, ln.Addr().String(), conns
}

// exchangeLogged opens the session through the entry and moves upBytes up and
// downBytes down; every byte has arrived when it returns.
func exchangeLogged(t *testing.T, entry string, conns <-chan *net.TCPConn) (client, tgt *net.TCPConn) {
	t.Helper()
	c, err := net.Dial("tcp", entry)
	if err != nil {
		t.Fatal(err)
	}
	client = c.(*net.TCPConn)
	t.Cleanup(func() { _ = client.Close() })
	if _, err := client.Write(bytes.Repeat([]byte("u"), upBytes)); err != nil {
		t.Fatal(err)
	}
	select {
	case tgt = <-conns:
	case <-time.After(10 * time.Second):
		t.Fatal("no connection reached the target")
	}
	t.Cleanup(func() { _ = tgt.Close() })
	deadline := time.Now().Add(10 * time.Second)
	_ = tgt.SetDeadline(deadline)
	_ = client.SetDeadline(deadline)
	if _, err := io.ReadFull(tgt, make([]byte, upBytes)); err != nil {
		t.Fatalf("target read: %v", err)
	}
	if _, err := tgt.Write(bytes.Repeat([]byte("d"), downBytes)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(client, make([]byte, downBytes)); err != nil {
		t.Fatalf("client read: %v", err)
	}
	return client, tgt
}

// TestSessionLogClean: a session that both sides close cleanly is logged
// closed, with the same id and bytes, on every hop, and each hop logs its
// steps at level 4 (open, route, dial, status, both half-closes) and its
// frames at level 5.
func TestSessionLogClean(t *testing.T) {
	tc, entry, conns := logChain(t, muxtest.FastTuning())
	client, tgt := exchangeLogged(t, entry, conns)
	if err := client.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(tgt); err != nil || len(b) != 0 {
		t.Fatalf("target after the client's FIN: %q, %v", b, err)
	}
	_ = tgt.Close()
	if b, err := io.ReadAll(client); err != nil || len(b) != 0 {
		t.Fatalf("client after the target's close: %q, %v", b, err)
	}
	id := assertEnds(t, tc, endLine{outcome: "closed", up: upBytes, down: downBytes})

	want := map[string][]string{
		"leaf":   {"route chosen", "status", "half-close by client", "half-close by target"},
		"relay2": {"open received", "route chosen", "status", "half-close by client", "half-close by target"},
		"relay1": {"open received", "route chosen", "status", "half-close by client", "half-close by target"},
		"root":   {"open received", "dial", "status", "half-close by client", "half-close by target"},
	}
	for label, w := range want {
		// Sorted: the entry logs the client's half-close once its end
		// frame went out, and on a loaded machine the target's may be
		// logged first.
		got := steps(tc.logs[label], id)
		slices.Sort(got)
		slices.Sort(w)
		if strings.Join(got, ", ") != strings.Join(w, ", ") {
			t.Errorf("%s: level-4 steps %q, want %q", label, got, w)
		}
		if _, ok := tc.logs[label].find(func(r logRecord) bool {
			return r.Level == logrus.TraceLevel && r.Data["id"] == id && r.Message == "frames"
		}); !ok {
			t.Errorf("%s: no frames summary at level 5", label)
		}
	}
}

// TestSessionLogClientReset: the entry's client resets; every hop, the
// relays included, logs aborted by the client.
func TestSessionLogClientReset(t *testing.T) {
	tc, entry, conns := logChain(t, muxtest.FastTuning())
	client, tgt := exchangeLogged(t, entry, conns)
	resetConn(client)
	if _, err := io.ReadAll(tgt); err == nil {
		t.Fatal("the target's socket ended cleanly after the client's reset")
	}
	assertEnds(t, tc, endLine{outcome: "aborted", who: "client", up: upBytes, down: downBytes})
}

// TestSessionLogTargetReset: the target resets; every hop logs aborted by
// the target.
func TestSessionLogTargetReset(t *testing.T) {
	tc, entry, conns := logChain(t, muxtest.FastTuning())
	client, tgt := exchangeLogged(t, entry, conns)
	resetConn(tgt)
	if _, err := io.ReadAll(client); err == nil {
		t.Fatal("the client's socket ended cleanly after the target's reset")
	}
	assertEnds(t, tc, endLine{outcome: "aborted", who: "target", up: upBytes, down: downBytes})
}

// TestSessionLogIdleTimeout: a session that stops moving bytes is aborted
// by the idle timeout, and every hop says so.
func TestSessionLogIdleTimeout(t *testing.T) {
	tun := muxtest.FastTuning()
	tun.IdleTimeout = 2 * time.Second // the exchange never stalls that long
	tc, entry, conns := logChain(t, tun)
	client, _ := exchangeLogged(t, entry, conns)
	_ = client.SetDeadline(time.Now().Add(tun.IdleTimeout + 10*time.Second))
	if _, err := io.ReadAll(client); err == nil {
		t.Fatal("the idle session's client socket ended cleanly")
	}
	assertEnds(t, tc, endLine{outcome: "aborted", who: "timeout", up: upBytes, down: downBytes})
}

// TestSessionLogShutdown: a relay that shuts down with the session still
// open after its grace period aborts it as a shutdown, not as a lost link,
// and the ends on both sides name it too.
func TestSessionLogShutdown(t *testing.T) {
	tc, entry, conns := logChain(t, muxtest.FastTuning())
	client, _ := exchangeLogged(t, entry, conns)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := tc.r1.Shutdown(ctx); err == nil {
		t.Fatal("relay1 shut down with no session to abort")
	}
	if _, err := io.ReadAll(client); err == nil {
		t.Fatal("the client's socket ended cleanly after the relay's shutdown")
	}
	assertEnds(t, tc, endLine{outcome: "aborted", who: "shutdown:relay1", up: upBytes, down: downBytes})
}

// TestSessionLogLinkLost: the link between relay1 and relay2 is cut (both
// its TCP ends reset); the two relays see it die, and every hop, the ends
// beyond them included, names that link as who aborted.
func TestSessionLogLinkLost(t *testing.T) {
	tc, entry, conns := logChainWith(t, muxtest.FastTuning(), true)
	client, _ := exchangeLogged(t, entry, conns)
	tc.childProxy.cut()
	if _, err := io.ReadAll(client); err == nil {
		t.Fatal("the client's socket ended cleanly after the link was cut")
	}
	assertEnds(t, tc, endLine{outcome: "aborted", who: "link:relay1/relay2", up: upBytes, down: downBytes})
}

// TestSessionLogInProcess: a session opened in process (Node.Open, as the
// eventsink's forwarder does) to an in-process handler (as the epproxy's
// event service) is logged like any other: opened and closed on both ends
// with its id and bytes.
func TestSessionLogInProcess(t *testing.T) {
	tc := startTestChain(t, tchainOpts{trace: true, chainOpts: chainOpts{
		rootServices: map[string]mux.Service{"h": {Handler: func(_ context.Context, c *mux.Conn) {
			if b, err := io.ReadAll(c); err != nil || len(b) != upBytes {
				return
			}
			_, _ = c.Write(bytes.Repeat([]byte("d"), downBytes))
			_ = c.CloseWrite()
		}}},
	}})
	c, err := tc.leaf.Open(context.Background(), "root", "h")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(bytes.Repeat([]byte("u"), upBytes)); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(c); err != nil || len(b) != downBytes {
		t.Fatalf("read %d bytes, %v; want %d and a clean end", len(b), err, downBytes)
	}
	_ = c.Close()
	id := assertEnds(t, tc, endLine{outcome: "closed", up: upBytes, down: downBytes})
	if _, ok := tc.logs["leaf"].find(func(r logRecord) bool {
		return r.Level == logrus.InfoLevel && r.Data["id"] == id && r.Message == "opened"
	}); !ok {
		t.Error("the in-process opener logged no opened line with the session's id")
	}
}
