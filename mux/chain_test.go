package mux_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// chain is the four-node test tree: root <- relay1 <- relay2 <- leaf.
// root-relay1 is dialled by the parent (root dials relay1), relay1-relay2
// by the child, relay2-leaf by the parent.
type chain struct {
	root, r1, r2, leaf *mux.Node
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

type chainOpts struct {
	tuning       mux.Tuning
	rootServices map[string]mux.Service
	leafServices map[string]mux.Service
	rootOpts     []muxtest.Option // the root's entries
	leafOpts     []muxtest.Option // the leaf's entries
	r1Listen     string           // fixed relay1 address (for restart tests)
	r2Listen     string
}

func startChain(t testing.TB, o chainOpts) *chain {
	t.Helper()
	if o.tuning == (mux.Tuning{}) {
		o.tuning = muxtest.FastTuning()
	}
	if o.r1Listen == "" {
		o.r1Listen = "127.0.0.1:0"
	}
	if o.r2Listen == "" {
		o.r2Listen = "127.0.0.1:0"
	}
	c := &chain{}
	// relay1 listens for its parent (root dials it) and for relay2 (the
	// child dials).
	c.r1 = muxtest.StartNode(t, mux.Config{Label: "relay1", Role: mux.RoleRelay, Tuning: o.tuning, Links: []mux.LinkConfig{
		{Peer: "root", Parent: true, Listen: o.r1Listen},
		{Peer: "relay2", Listen: o.r1Listen},
	}})
	r1 := c.r1.LinkAddr("root").String()
	c.root = muxtest.StartNode(t, mux.Config{Label: "root", Role: mux.RoleRoot, Tuning: o.tuning, Services: o.rootServices, Links: []mux.LinkConfig{
		{Peer: "relay1", Dial: r1},
	}}, o.rootOpts...)
	c.r2 = muxtest.StartNode(t, mux.Config{Label: "relay2", Role: mux.RoleRelay, Tuning: o.tuning, Links: []mux.LinkConfig{
		{Peer: "relay1", Parent: true, Dial: r1},
		{Peer: "leaf", Listen: o.r2Listen},
	}})
	// The leaf listens and its parent relay2 dials: the link from the
	// inner side outwards... here relay2 listens, the leaf dials.
	c.leaf = muxtest.StartNode(t, mux.Config{Label: "leaf", Role: mux.RoleLeaf, Tuning: o.tuning, Services: o.leafServices, Links: []mux.LinkConfig{
		{Peer: "relay2", Parent: true, Dial: c.r2.LinkAddr("leaf").String()},
	}}, o.leafOpts...)
	c.waitRoutes(t)
	// At the end of the test, before the nodes shut down: no session may
	// be left in any node's table.
	t.Cleanup(func() { checkNoSessions(t, c.nodes()...) })
	return c
}

func (c *chain) waitRoutes(t testing.TB) {
	t.Helper()
	muxtest.WaitFor(t, 10*time.Second, "routes to be learned", func() bool {
		r := c.root.Routes()
		return r["relay1"] == "relay1" && r["relay2"] == "relay1" && r["leaf"] == "relay1" &&
			c.r1.Routes()["leaf"] == "relay2" && c.r2.Routes()["leaf"] == "leaf" &&
			len(c.leaf.PathToRoot()) == 3
	})
}

func (c *chain) nodes() []*mux.Node { return []*mux.Node{c.root, c.r1, c.r2, c.leaf} }

func TestChainRoutesLearned(t *testing.T) {
	c := startChain(t, chainOpts{})
	if got := c.leaf.PathToRoot(); len(got) != 3 || got[0] != "relay2" || got[1] != "relay1" || got[2] != "root" {
		t.Fatalf("leaf path to root = %v", got)
	}
	if got := c.r2.PathToRoot(); len(got) != 2 || got[0] != "relay1" || got[1] != "root" {
		t.Fatalf("relay2 path to root = %v", got)
	}
	if got := len(c.root.Routes()); got != 3 {
		t.Fatalf("root routes = %v", c.root.Routes())
	}
}

// transfer sends size bytes through c (a session) while reading the reply,
// and returns the SHA-256 of what was sent and of what came back.
func roundTrip(t testing.TB, conn io.ReadWriter, cw func() error, size int64, seed uint64) (sent, got [32]byte, n int64) {
	t.Helper()
	hs := sha256.New()
	errc := make(chan error, 1)
	go func() {
		_, err := io.CopyN(io.MultiWriter(conn, hs), newPattern(seed), size)
		if err == nil {
			err = cw()
		}
		errc <- err
	}()
	hr := sha256.New()
	n, err := io.Copy(hr, conn)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	copy(sent[:], hs.Sum(nil))
	copy(got[:], hr.Sum(nil))
	return sent, got, n
}

func TestSessionLeafToRootEcho(t *testing.T) {
	echo := startEcho(t)
	c := startChain(t, chainOpts{rootServices: map[string]mux.Service{"echo": {Addrs: []string{echo.addr()}}}})
	conn, err := c.leaf.Open(context.Background(), "root", "echo")
	if err != nil {
		t.Fatal(err)
	}
	sent, got, n := roundTrip(t, conn, conn.CloseWrite, 1<<20, 1)
	conn.Close()
	if sent != got || n != 1<<20 {
		t.Fatalf("echo mismatch: %d bytes", n)
	}
	assertDrained(t, c.nodes()...)
}

// assertDrained waits until no node carries a session.
func assertDrained(t testing.TB, nodes ...*mux.Node) {
	t.Helper()
	muxtest.WaitFor(t, 10*time.Second, "sessions to drain", func() bool {
		for _, n := range nodes {
			if n.Sessions() != 0 {
				return false
			}
		}
		return true
	})
}

func TestNoRouteAndRefused(t *testing.T) {
	closed := freeAddr(t) // nothing listens here
	c := startChain(t, chainOpts{leafServices: map[string]mux.Service{"dead": {Addrs: []string{closed}}}})
	_, err := c.leaf.Open(context.Background(), "nowhere", "x")
	var se *mux.StatusError
	if !errors.Is(err, mux.ErrNoRoute) || !errors.As(err, &se) || se.Node != "root" {
		t.Fatalf("open to unknown label: %v", err)
	}
	_, err = c.root.Open(context.Background(), "leaf", "dead")
	if !errors.Is(err, mux.ErrRefused) || !errors.As(err, &se) || se.Node != "leaf" {
		t.Fatalf("open to refused target: %v", err)
	}
	_, err = c.root.Open(context.Background(), "leaf", "nosuch")
	if !errors.Is(err, mux.ErrDenied) {
		t.Fatalf("open to unknown service: %v", err)
	}
	assertDrained(t, c.nodes()...)
}

func TestHalfClose(t *testing.T) {
	hash := startHashServer(t, 100000)
	c := startChain(t, chainOpts{leafServices: map[string]mux.Service{"hash": {Addrs: []string{hash}}}})
	conn, err := c.root.Open(context.Background(), "leaf", "hash")
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(conn, h), newPattern(3), 3<<20); err != nil {
		t.Fatal(err)
	}
	if err := conn.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	reply, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("read reply after half-close: %v", err)
	}
	if len(reply) != 32+100000 || !bytes.Equal(reply[:32], h.Sum(nil)) {
		t.Fatalf("reply: %d bytes, hash match %v", len(reply), bytes.Equal(reply[:32], h.Sum(nil)))
	}
	conn.Close()
	assertDrained(t, c.nodes()...)
}
