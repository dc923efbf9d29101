package mux_test

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// TestSuccessorAddrEntryAwaitsLinks: a root that took its SOCKS5 entry's
// socket over from a predecessor (Config.Inherited) accepts on it only
// once its link to the gwproxy that serves the address is up: a client
// that connects before the link is up waits in the listen queue and
// reaches the endpoint, instead of being told there is no route.
func TestSuccessorAddrEntryAwaitsLinks(t *testing.T) {
	checkReleased(t)
	_, port := nameServer(t, "127.0.2.5", "endpoint-2-5")
	tun := muxtest.FastTuning()
	tun.HelloTimeout = 8 * time.Second // the longest the entry waits for the link
	sl := listenEntry(t)
	root := muxtest.StartNode(t, mux.Config{Label: "root", Role: mux.RoleRoot, Tuning: tun,
		Inherited: map[string]net.Listener{sl.Addr().String(): sl},
		Links:     []mux.LinkConfig{{Peer: "gwp-b", Listen: "127.0.0.1:0", AcceptNetworks: []string{"127.0.2.0/24"}}},
	}, muxtest.WithAddrEntry(sl, mux.AddrEntry{Name: "socks", Kind: mux.EntrySOCKS5, Rules: allowAll}))

	type result struct {
		rep  byte
		err  error
		name string
	}
	got := make(chan result, 1)
	go func() {
		c, rep, err := muxtest.SOCKSConnect(sl.Addr().String(), "127.0.2.5", port, "", "")
		r := result{rep: rep, err: err}
		if c != nil {
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			b := make([]byte, 64)
			n, err := io.ReadAtLeast(c, b, len("endpoint-2-5\n"))
			r.name, r.err = strings.TrimSpace(string(b[:n])), err
			_ = c.Close()
		}
		got <- r
	}()
	select {
	case r := <-got:
		t.Fatalf("the client was answered before the link was up: reply %d, %q, %v", r.rep, r.name, r.err)
	default:
	}
	muxtest.StartNode(t, mux.Config{Label: "gwp-b", Role: mux.RoleLeaf, Tuning: tun, Serves: []string{"127.0.2.0/24"},
		Links: []mux.LinkConfig{{Peer: "root", Parent: true, Dial: root.LinkAddr("gwp-b").String()}}})
	select {
	case r := <-got:
		if r.err != nil || r.rep != 0 || r.name != "endpoint-2-5" {
			t.Fatalf("socks through the successor's entry: reply %d, read %q, %v; want the endpoint", r.rep, r.name, r.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no answer to the socks client within 20s")
	}
}
