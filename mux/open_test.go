package mux_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

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

// TestEntryStatusFailures: a session that cannot be opened fails at the
// entry with the status of the node that decided, logged at error level
// there, and the TCP client's connection is reset at once.
func TestEntryStatusFailures(t *testing.T) {
	checkReleased(t)
	closed := freeAddr(t) // nothing listens here
	lnNoRoute, lnRefused, lnDenied := listenEntry(t), listenEntry(t), listenEntry(t)
	tc := startTestChain(t, tchainOpts{chainOpts: chainOpts{
		rootServices: map[string]mux.Service{"dead": {Addrs: []string{closed}}},
		leafOpts: []muxtest.Option{
			muxtest.WithEntry(lnNoRoute, "noroute", "nowhere", "x"),
			muxtest.WithEntry(lnRefused, "refused", "root", "dead"),
			muxtest.WithEntry(lnDenied, "denied", "root", "nosuch"),
		},
	}})
	for _, tt := range []struct {
		ln     net.Listener
		want   error
		reason string
	}{
		{lnNoRoute, mux.ErrNoRoute, "nowhere is unknown to the root"},
		{lnRefused, mux.ErrRefused, "connection refused"},
		{lnDenied, mux.ErrDenied, "service nosuch is not offered by root"},
	} {
		t.Run(tt.want.Error(), func(t *testing.T) {
			// The reset may come before the connect completes.
			nc, err := net.Dial("tcp", tt.ln.Addr().String())
			if err == nil {
				f := startFlow(nc.(*net.TCPConn), false, true)
				t.Cleanup(f.stop)
				assertReset(t, f, 5*time.Second, "entry client")
			} else if !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("dial the entry: %v", err)
			}
			rec := tc.logs["leaf"].waitLog(t, "the failed open", errorWith(tt.reason))
			var se *mux.StatusError
			if err := rec.err(); !errors.Is(err, tt.want) || !errors.As(err, &se) || se.Node != "root" {
				t.Fatalf("logged error %v; want %v decided at root", err, tt.want)
			}
		})
	}
	// The same through Node.Open.
	_, err := tc.leaf.Open(context.Background(), "root", "nosuch")
	var se *mux.StatusError
	if !errors.Is(err, mux.ErrDenied) || !errors.As(err, &se) || se.Node != "root" || !strings.Contains(se.Reason, "nosuch") {
		t.Fatalf("open of an unknown service: %v", err)
	}
}
