package mux_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// Every node a session crosses counts how it ended: closed, aborted, or
// the status it was refused with.
func TestSessionsEndedByOutcome(t *testing.T) {
	echo := func(_ context.Context, c *mux.Conn) {
		defer c.Close()
		b, err := io.ReadAll(c)
		if err != nil {
			return
		}
		if _, err := c.Write(b); err == nil {
			_ = c.CloseWrite()
		}
	}
	c := startChain(t, chainOpts{rootServices: map[string]mux.Service{"echo": {Handler: echo}}})

	// One session closed cleanly at both ends.
	conn, err := c.leaf.Open(context.Background(), "root", "echo")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	_ = conn.CloseWrite()
	if b, err := io.ReadAll(conn); err != nil || string(b) != "hello" {
		t.Fatalf("echo: %q, %v", b, err)
	}
	_ = conn.Close()

	// One aborted by the entry.
	conn, err = c.leaf.Open(context.Background(), "root", "echo")
	if err != nil {
		t.Fatal(err)
	}
	conn.Abort(errors.New("client gone"))

	// One refused: the service is not offered.
	if _, err := c.leaf.Open(context.Background(), "root", "nope"); !errors.Is(err, mux.ErrDenied) {
		t.Fatalf("open of a service not offered: %v", err)
	}
	// One with no route: the root knows no such label below it.
	if _, err := c.leaf.Open(context.Background(), "nowhere", "echo"); !errors.Is(err, mux.ErrNoRoute) {
		t.Fatalf("open to an unknown label: %v", err)
	}

	// The ends know which session aborted. A relay counts what its own
	// end result says: it passes an abort on as the end of its streams,
	// so it may count it closed; it counts two carried sessions either way.
	for _, n := range c.nodes() {
		relay := n == c.r1 || n == c.r2
		muxtest.WaitFor(t, 10*time.Second, n.Label()+"'s outcomes", func() bool {
			got := n.SessionsEnded()
			if got["denied"] != 1 || got["no_route"] != 1 {
				return false
			}
			if relay {
				return got[mux.OutcomeClosed]+got[mux.OutcomeAborted] == 2 && len(got) <= 4
			}
			return got[mux.OutcomeClosed] == 1 && got[mux.OutcomeAborted] == 1 && len(got) == 4
		})
		if st := n.Status(); st.Ended["denied"] != 1 {
			t.Errorf("%s: status: %v", n.Label(), st.Ended)
		}
	}
}
