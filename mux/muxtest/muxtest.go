// Package muxtest helps tests of packages built on mux start real nodes on
// loopback: short timeouts, a node whose shutdown is registered with the
// test, a root and a leaf linked together, and polling with a deadline.
// (mux's own tests keep their copies: they cannot import a package that
// imports mux.)
//
// Typical usage:
//
//	root, leaf := muxtest.StartPair(t, svc.Handle)
//	c, err := leaf.Open(ctx, "epp", "events")
package muxtest

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/internal/daemon/daemontest"
	"github.com/relaychain/relaychain/mux"
)

// Log returns a logger that writes to t.Log and goes quiet when the test
// ends. MUX_TEST_LOG=N sets the numeric level (default 2: warnings).
func Log(t testing.TB) *logrus.Entry {
	t.Helper()
	level := 2
	if v, err := strconv.Atoi(os.Getenv("MUX_TEST_LOG")); err == nil {
		level = v
	}
	return logrus.NewEntry(daemontest.Logger(t, level))
}

// FastTuning shortens keepalive, timeouts and backoff so that faults show
// and links come back quickly.
func FastTuning() mux.Tuning {
	t := mux.DefaultTuning()
	t.KeepAliveInterval = 500 * time.Millisecond
	t.WriteTimeout = time.Second
	t.StreamCloseTimeout = 5 * time.Second
	t.HelloTimeout = 2 * time.Second
	t.OpenTimeout = 5 * time.Second
	t.DialTimeout = 2 * time.Second
	t.BackoffMin = 20 * time.Millisecond
	t.BackoffMax = 200 * time.Millisecond
	t.ShutdownAbortWait = 5 * time.Second
	return t
}

// StartNode starts a node and registers its shutdown with the test.
func StartNode(t testing.TB, cfg mux.Config) *mux.Node {
	t.Helper()
	cfg = WithTLS(t, cfg)
	n, err := mux.New(cfg, Log(t))
	if err != nil {
		t.Fatalf("new %s: %v", cfg.Label, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = n.Serve(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-served
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = n.Shutdown(sctx)
	})
	return n
}

// StartPair starts a root ("epp") offering handler as service "events" and
// a leaf ("es-a") below it, and waits until the leaf can reach the root.
func StartPair(t testing.TB, handler func(context.Context, *mux.Conn)) (root, leaf *mux.Node) {
	t.Helper()
	root = StartNode(t, mux.Config{Label: "epp", Role: mux.RoleRoot, Tuning: FastTuning(),
		Services: map[string]mux.Service{"events": {Handler: handler}},
		Links:    []mux.LinkConfig{{Peer: "es-a", Listen: "127.0.0.1:0"}}})
	leaf = StartNode(t, mux.Config{Label: "es-a", Role: mux.RoleLeaf, Tuning: FastTuning(),
		Links: []mux.LinkConfig{{Peer: "epp", Parent: true, Dial: root.LinkAddr("es-a").String()}}})
	WaitFor(t, 10*time.Second, "the leaf's route to the root", func() bool {
		p := leaf.PathToRoot()
		return len(p) == 1 && p[0] == "epp" && root.Routes()["es-a"] == "es-a"
	})
	return root, leaf
}

// WaitFor polls cond until it holds, and fails the test after d.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
