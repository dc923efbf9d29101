package mux_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

func linkStatus(t *testing.T, s mux.NodeStatus, peer string) mux.LinkStatus {
	t.Helper()
	for _, l := range s.Links {
		if l.Peer == peer {
			return l
		}
	}
	t.Fatalf("%s: no link to %s in the status: %+v", s.Label, peer, s.Links)
	return mux.LinkStatus{}
}

func TestStatus(t *testing.T) {
	hold := make(chan struct{})
	handler := func(_ context.Context, c *mux.Conn) {
		defer c.Close()
		buf := make([]byte, 5)
		if _, err := io.ReadFull(c, buf); err == nil {
			_, _ = c.Write(buf)
		}
		<-hold
	}
	root := muxtest.StartNode(t, mux.Config{Label: "epp", Role: mux.RoleRoot, Tuning: muxtest.FastTuning(), Version: "v1.2.3",
		Services: map[string]mux.Service{"events": {Handler: handler}},
		Links:    []mux.LinkConfig{{Peer: "es-a", Listen: "127.0.0.1:0"}}})
	// The second parent is configured but nothing listens there.
	deadAddr := fmt.Sprintf("127.0.0.1:%d", muxtest.FreePort(t))
	var stopLeaf func()
	leaf := muxtest.StartNode(t, mux.Config{Label: "es-a", Role: mux.RoleLeaf, Tuning: muxtest.FastTuning(),
		Links: []mux.LinkConfig{
			{Peer: "epp", Parent: true, Dial: root.LinkAddr("es-a").String()},
			{Peer: "epp2", Parent: true, Dial: deadAddr},
		}}, muxtest.WithStop(&stopLeaf))
	muxtest.WaitFor(t, 10*time.Second, "the leaf's route to the root", func() bool {
		p := leaf.PathToRoot()
		return len(p) == 1 && p[0] == "epp" && root.Routes()["es-a"] == "es-a"
	})

	conn, err := leaf.Open(context.Background(), "epp", "events")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != "hello" {
		t.Fatalf("echo: %q, %v", got, err)
	}

	var rs mux.NodeStatus
	muxtest.WaitFor(t, 10*time.Second, "the root's status with the session and a round trip", func() bool {
		rs = root.Status()
		l := linkStatus(t, rs, "es-a")
		return rs.Sessions == 1 && l.Sessions == 1 && l.RTT > 0
	})
	if rs.Label != "epp" || rs.Role != "root" || rs.Version != "v1.2.3" {
		t.Errorf("root status: label %q role %q version %q", rs.Label, rs.Role, rs.Version)
	}
	if rs.Started.IsZero() || rs.Uptime <= 0 {
		t.Errorf("root status: started %v, uptime %v", rs.Started, rs.Uptime)
	}
	if rs.Routes != 1 || len(rs.PathToRoot) != 0 {
		t.Errorf("root status: %d routes, path %v; want 1 route and no path", rs.Routes, rs.PathToRoot)
	}
	rl := linkStatus(t, rs, "es-a")
	if !rl.Up || rl.Side != "child" || rl.Dialled || rl.Since.IsZero() || rl.Remote == "" {
		t.Errorf("root's link to es-a: %+v", rl)
	}
	if rl.Addr != root.LinkAddr("es-a").String() {
		t.Errorf("root's link to es-a: addr %q, want %q", rl.Addr, root.LinkAddr("es-a"))
	}
	// The session's five bytes each way, inside yamux and TLS framing.
	if rl.BytesIn < 5 || rl.BytesOut < 5 {
		t.Errorf("root's link to es-a: %d bytes in, %d out", rl.BytesIn, rl.BytesOut)
	}

	ls := leaf.Status()
	if len(ls.PathToRoot) != 1 || ls.PathToRoot[0] != "epp" || ls.Sessions != 1 {
		t.Errorf("leaf status: path %v, %d sessions", ls.PathToRoot, ls.Sessions)
	}
	ll := linkStatus(t, ls, "epp")
	if !ll.Up || ll.Side != "parent" || !ll.Dialled || ll.BytesIn < 5 || ll.BytesOut < 5 {
		t.Errorf("leaf's link to epp: %+v", ll)
	}
	// The leaf opened the session: it arrived through no link there.
	if ll.Sessions != 0 {
		t.Errorf("leaf's link to epp: %d sessions, want 0", ll.Sessions)
	}
	muxtest.WaitFor(t, 10*time.Second, "the dead parent's last error", func() bool {
		return linkStatus(t, leaf.Status(), "epp2").LastErr != ""
	})
	dl := linkStatus(t, leaf.Status(), "epp2")
	if dl.Up || dl.Addr != deadAddr || !strings.Contains(dl.LastErr, "link not up") {
		t.Errorf("leaf's link to epp2: %+v", dl)
	}

	// The snapshot is plain data.
	b, err := json.Marshal(rs)
	if err != nil {
		t.Fatal(err)
	}
	var back mux.NodeStatus
	if err := json.Unmarshal(b, &back); err != nil || back.Label != "epp" || len(back.Links) != 1 {
		t.Fatalf("json round trip: %v, %+v", err, back)
	}

	close(hold)
	conn.Close()
	muxtest.WaitFor(t, 10*time.Second, "the root's sessions to end", func() bool { return root.Status().Sessions == 0 })
	stopLeaf()
	muxtest.WaitFor(t, 10*time.Second, "the root's link to es-a down", func() bool {
		rs := root.Status()
		return !linkStatus(t, rs, "es-a").Up && len(rs.Errors) > 0
	})
	rs = root.Status()
	rl = linkStatus(t, rs, "es-a")
	if rl.Since.IsZero() || rl.RTT != 0 || rl.LastErr != "link down" || rs.Routes != 0 {
		t.Errorf("root's link to es-a after the leaf stopped: %+v, %d routes", rl, rs.Routes)
	}
	if len(rs.Errors) == 0 || rs.Errors[len(rs.Errors)-1].Peer != "es-a" {
		t.Errorf("root's recent errors: %+v", rs.Errors)
	}
}
