package mux_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// rawHello dials addr, sends b and reads the node's answer (its hello and
// verdict); then it checks that the node closes the connection.
func rawHello(t testing.TB, addr string, b []byte) (h mux.Hello, ok bool, reason string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	h, err = mux.ReadHello(c)
	if err != nil {
		t.Fatalf("the node's hello: %v", err)
	}
	ok, reason, err = mux.ReadVerdict(c)
	if err != nil {
		t.Fatalf("the node's verdict: %v", err)
	}
	if !ok {
		if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
			t.Fatalf("after a refusal the node sent more (%d bytes, %v)", n, err)
		}
	}
	return h, ok, reason
}

// TestHelloRefusals: relay1's link listener refuses a wrong protocol
// version, an unexpected label, a duplicate label, a side or role mismatch
// and garbage; each refusal is logged at error level with its reason on
// relay1, and on the other side too where that is a node; no link comes up
// and the listener goes on serving.
func TestHelloRefusals(t *testing.T) {
	checkReleased(t)
	echo := startEcho(t)
	// Raw hellos need plaintext links: on TLS nothing reaches the hello
	// before a certificate (see tls_test.go).
	tc := startTestChain(t, tchainOpts{chainOpts: chainOpts{plaintext: true, rootServices: map[string]mux.Service{"echo": {Addrs: []string{echo.addr()}}}}})
	addr := tc.r1Addr
	r1log := tc.logs["relay1"]

	raw := []struct {
		name   string
		msg    []byte
		reason string
		is     error
	}{
		{"version", mux.Hello{Version: mux.ProtoVersion + 1, Role: mux.RoleLeaf, Label: "relay2"}.Encode(), fmt.Sprintf("speaks protocol version %d", mux.ProtoVersion+1), mux.ErrVersion},
		{"unexpected label", mux.Hello{Version: mux.ProtoVersion, Role: mux.RoleRelay, Label: "stranger"}.Encode(), "unexpected label stranger on this port", mux.ErrRejected},
		{"duplicate label", mux.Hello{Version: mux.ProtoVersion, Role: mux.RoleRelay, Label: "relay2"}.Encode(), "duplicate label: relay2 is already connected", mux.ErrRejected},
		{"both parents", mux.Hello{Version: mux.ProtoVersion, Role: mux.RoleRelay, Parent: true, Label: "relay2"}.Encode(), "relay2 is configured as this node's child but takes this node as its child", mux.ErrRejected},
		{"both children", mux.Hello{Version: mux.ProtoVersion, Role: mux.RoleRoot, Label: "root"}.Encode(), "root is configured as this node's parent but does not take it as a child", mux.ErrRejected},
		{"child is a root", mux.Hello{Version: mux.ProtoVersion, Role: mux.RoleRoot, Label: "relay2"}.Encode(), "relay2 is configured as this node's child but is a root", mux.ErrRejected},
		{"garbage", []byte("GET / HTTP/1.0\r\n\r\n"), `not a relay chain peer (magic "GET ")`, mux.ErrBadHello},
	}
	for _, tt := range raw {
		t.Run(tt.name, func(t *testing.T) {
			h, ok, reason := rawHello(t, addr, tt.msg)
			if ok || !strings.Contains(reason, tt.reason) {
				t.Fatalf("verdict ok=%v reason %q; want a refusal for %q", ok, reason, tt.reason)
			}
			if h.Label != "relay1" {
				t.Fatalf("the refusing hello says %q", h.Label)
			}
			if strings.Contains(reason, "(expected") {
				t.Fatalf("the refusal tells the peer which labels this port serves: %q", reason)
			}
			rec := r1log.waitLog(t, tt.name, errorWith(tt.reason))
			if !errors.Is(rec.err(), tt.is) {
				t.Fatalf("logged error %v does not match %v", rec.err(), tt.is)
			}
		})
	}

	// Real nodes that relay1 refuses; each logs the refusal on its side.
	nodes := []struct {
		name   string
		cfg    mux.Config
		reason string
	}{
		{"unexpected label", mux.Config{Label: "stranger", Role: mux.RoleLeaf, Links: []mux.LinkConfig{{Peer: "relay1", Parent: true, Dial: addr}}},
			"unexpected label stranger"},
		{"duplicate label", mux.Config{Label: "relay2", Role: mux.RoleLeaf, Links: []mux.LinkConfig{{Peer: "relay1", Parent: true, Dial: addr}}},
			"duplicate label: relay2 is already connected"},
		{"both parents", mux.Config{Label: "relay2", Role: mux.RoleRoot, Links: []mux.LinkConfig{{Peer: "relay1", Dial: addr}}},
			"relay2 is configured as this node's child but takes this node as its child"},
	}
	for _, tt := range nodes {
		t.Run("node "+tt.name, func(t *testing.T) {
			tt.cfg.Tuning = tc.tun
			tt.cfg.Links[0].Plaintext = true
			log, sink := captureLog(t)
			n := muxtest.StartNode(t, tt.cfg, muxtest.WithLog(log))
			rec := sink.waitLog(t, "the refusal on the refused node", errorWith(tt.reason))
			if !errors.Is(rec.err(), mux.ErrRefusedByPeer) {
				t.Fatalf("logged error %v does not match ErrRefusedByPeer", rec.err())
			}
			r1log.waitLog(t, "the refusal on relay1", errorWith(tt.reason))
			if got := n.Links(); len(got) != 0 {
				t.Fatalf("refused node has links %v", got)
			}
		})
	}

	// Nothing changed on relay1, and it serves on.
	if got := tc.r1.Links(); len(got) != 2 || got[0] != "relay2" || got[1] != "root" {
		t.Fatalf("relay1 links after the refusals: %v", got)
	}
	if _, ok := tc.r1.Routes()["stranger"]; ok {
		t.Fatal("a refused label was routed")
	}
	h, ok, _ := rawHello(t, addr, mux.Hello{Version: mux.ProtoVersion, Role: mux.RoleRelay, Label: "relay2"}.Encode())
	if ok || h.Label != "relay1" {
		t.Fatal("the listener stopped answering")
	}
	conn, err := tc.leaf.Open(context.Background(), "root", "echo")
	if err != nil {
		t.Fatal(err)
	}
	sent, got, n := roundTrip(t, conn, conn.CloseWrite, 100000, 4)
	conn.Close()
	if sent != got || n != 100000 {
		t.Fatal("echo through relay1 after the refusals failed")
	}
}

// TestHelloRefusedByDialer: the dialling side refuses a listener whose
// hello does not fit (another protocol version, a parent that does not take
// it as a child), tells it why, logs it at error level, and keeps trying.
func TestHelloRefusedByDialer(t *testing.T) {
	checkReleased(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	answers := []struct {
		h      mux.Hello
		reason string
		is     error
	}{
		{mux.Hello{Version: 9, Role: mux.RoleRelay, Parent: true, Label: "up"}, "speaks protocol version 9", mux.ErrVersion},
		{mux.Hello{Version: mux.ProtoVersion, Role: mux.RoleRelay, Label: "up"}, "up is configured as this node's parent but does not take it as a child", mux.ErrRejected},
		{mux.Hello{Version: mux.ProtoVersion, Role: mux.RoleRelay, Parent: true, Label: "other"}, "expected up, peer says it is other", mux.ErrRejected},
	}
	verdicts := make(chan string, len(answers))
	fakeDone := make(chan struct{})
	go func() {
		defer close(fakeDone)
		for _, a := range answers {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := mux.ReadHello(c); err == nil {
				_, _ = c.Write(append(a.h.Encode(), mux.EncodeVerdict("", true)...))
				if ok, reason, err := mux.ReadVerdict(c); err == nil && !ok {
					verdicts <- reason
				}
			}
			_ = c.Close()
		}
	}()
	defer func() {
		_ = ln.Close()
		<-fakeDone
	}()
	log, sink := captureLog(t)
	n := muxtest.StartNode(t, mux.Config{Label: "down", Role: mux.RoleLeaf, Tuning: muxtest.FastTuning(), Links: []mux.LinkConfig{
		{Peer: "up", Parent: true, Dial: ln.Addr().String(), Plaintext: true},
	}}, muxtest.WithLog(log))
	for _, a := range answers {
		select {
		case reason := <-verdicts:
			if !strings.Contains(reason, a.reason) {
				t.Fatalf("verdict reason %q, want %q", reason, a.reason)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no refusal for %q", a.reason)
		}
		rec := sink.waitLog(t, a.reason, errorWith(a.reason))
		if !errors.Is(rec.err(), a.is) {
			t.Fatalf("logged error %v does not match %v", rec.err(), a.is)
		}
	}
	if got := n.Links(); len(got) != 0 {
		t.Fatalf("links up after refusals: %v", got)
	}
}
