package mux_test

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// The networks a parent accepts from each child (LinkConfig.AcceptNetworks):
// what a child claims outside them is refused at every hop, with the
// reason in the refusing node's log, and downcalls keep going to the site
// that serves the address.

// acceptTree is root <- relay1 <- {gwp-a, gwp-b (real leaves), evil
// (scripted)}, with name servers at the sites and a SOCKS5 entry on the
// root. The root accepts 127.0.1.0/24, 127.0.2.0/24 and 127.0.9.0/24 from
// relay1; relay1 accepts 127.0.1.0/24 from gwp-a, 127.0.2.0/24 and
// 127.0.3.0/24 from gwp-b, and 127.0.9.0/24 from evil. gwp-b serves
// 127.0.3.0/24 too, which the root does not accept.
type acceptTree struct {
	root, relay1, a, b *mux.Node
	rootCfg            mux.Config
	rootLog, relayLog  *logSink
	evilAddr           string // relay1's port for evil
	socks              string
	portA, portB3      uint16
}

func startAcceptTree(t *testing.T) *acceptTree {
	t.Helper()
	tun := muxtest.FastTuning()
	at := &acceptTree{}
	_, at.portA = nameServer(t, "127.0.1.7", "site-a")
	_, at.portB3 = nameServer(t, "127.0.3.7", "site-b3")
	rlog, rsink := captureLog(t)
	at.relayLog = rsink
	at.relay1 = muxtest.StartNode(t, mux.Config{Label: "relay1", Role: mux.RoleRelay, Tuning: tun, Links: []mux.LinkConfig{
		{Peer: "root", Parent: true, Listen: "127.0.0.1:0"},
		{Peer: "gwp-a", Listen: "127.0.0.1:0", AcceptNetworks: []string{"127.0.1.0/24"}},
		{Peer: "gwp-b", Listen: "127.0.0.1:0", AcceptNetworks: []string{"127.0.2.0/24", "127.0.3.0/24"}},
		{Peer: "evil", Listen: "127.0.0.1:0", AcceptNetworks: []string{"127.0.9.0/24"}},
	}}, muxtest.WithLog(rlog))
	at.evilAddr = at.relay1.LinkAddr("evil").String()
	sl := listenEntry(t)
	at.socks = sl.Addr().String()
	log, sink := captureLog(t)
	at.rootLog = sink
	at.rootCfg = muxtest.WithTLS(t, mux.Config{Label: "root", Role: mux.RoleRoot, Tuning: tun, Links: []mux.LinkConfig{
		{Peer: "relay1", Dial: at.relay1.LinkAddr("root").String(), AcceptNetworks: []string{"127.0.1.0/24", "127.0.2.0/24", "127.0.9.0/24"}},
	}})
	at.root = muxtest.StartNode(t, at.rootCfg, muxtest.WithLog(log),
		muxtest.WithAddrEntry(sl, mux.AddrEntry{Name: "socks", Kind: mux.EntrySOCKS5, Rules: allowAll}))
	at.a = muxtest.StartNode(t, mux.Config{Label: "gwp-a", Role: mux.RoleLeaf, Tuning: tun, Serves: []string{"127.0.1.0/24"},
		Links: []mux.LinkConfig{{Peer: "relay1", Parent: true, Dial: at.relay1.LinkAddr("gwp-a").String()}}})
	at.b = muxtest.StartNode(t, mux.Config{Label: "gwp-b", Role: mux.RoleLeaf, Tuning: tun, Serves: []string{"127.0.2.0/24", "127.0.3.0/24"},
		Links: []mux.LinkConfig{{Peer: "relay1", Parent: true, Dial: at.relay1.LinkAddr("gwp-b").String()}}})
	muxtest.WaitFor(t, 10*time.Second, "the networks at relay1 and the root", func() bool {
		return len(at.relay1.Networks()) == 3 && len(at.root.Networks()) == 2 && at.root.Routes()["gwp-b"] == "relay1"
	})
	t.Cleanup(func() { checkNoSessions(t, at.root, at.relay1, at.a, at.b) })
	return at
}

// socksName opens a SOCKS5 session through the root's entry to
// host:port and returns the name the site's server wrote, or the reply
// code when the entry refused it.
func (at *acceptTree) socksName(t *testing.T, host string, port uint16) (string, byte) {
	t.Helper()
	c, rep, err := muxtest.SOCKSConnect(at.socks, host, port, "", "")
	if rep != 0 {
		return "", rep
	}
	if err != nil {
		t.Fatalf("socks to %s:%d: %v", host, port, err)
	}
	defer c.Close()
	return readName(t, c), 0
}

// TestChildClaimsOutsideItsAcceptedNetworks has a scripted child announce
// a more specific prefix inside another site's network, a host route
// there and an exact copy of it: each is refused at relay1 with the
// reason, none reaches the root, no tie is made, and downcalls to the
// address still reach site A. The one network its link accepts is taken.
// A network of gwp-b that relay1 accepts and passes up, but the root
// does not accept from relay1, is refused at the root.
func TestChildClaimsOutsideItsAcceptedNetworks(t *testing.T) {
	checkReleased(t)
	at := startAcceptTree(t)
	evil := dialScripted(t, at.evilAddr, "evil", mux.RoleLeaf, false)
	evil.send(mux.CtrlMsg{Type: mux.CtrlWhoReply, Labels: []string{"evil"}, Nets: []mux.NetAd{
		{Owner: "evil", Network: "127.0.1.0/24"},   // a copy of site A's
		{Owner: "evil", Network: "127.0.1.0/25"},   // more specific, inside site A's
		{Owner: "evil", Network: "127.0.9.0/24"},   // its own
		{Owner: "evil", Network: "@127.0.1.7"},     // a host route inside site A's
		{Owner: "evil", Network: "*.evil.example"}, // a pattern it was not given
	}})
	muxtest.WaitFor(t, 10*time.Second, "evil's accepted network at the root", func() bool {
		owner, err := at.root.ServedBy("127.0.9.1", 80)
		return err == nil && owner == "evil"
	})
	want := "[evil=127.0.9.0/24 gwp-a=127.0.1.0/24 gwp-b=127.0.2.0/24 gwp-b=127.0.3.0/24]"
	if got := fmt.Sprint(at.relay1.Networks()); got != want {
		t.Fatalf("relay1's networks: %s, want %s", got, want)
	}
	want = "[evil=127.0.9.0/24 gwp-a=127.0.1.0/24 gwp-b=127.0.2.0/24]"
	if got := fmt.Sprint(at.root.Networks()); got != want {
		t.Fatalf("the root's networks: %s, want %s", got, want)
	}
	for _, nw := range []string{"127.0.1.0/24", "127.0.1.0/25", "@127.0.1.7"} {
		at.relayLog.waitLog(t, "the refusal of "+nw, lineWith(logrus.ErrorLevel,
			"refused network "+nw+" of evil announced by child evil: outside the link's accept_networks (127.0.9.0/24)", "owner:evil", "l:evil"))
	}
	at.relayLog.waitLog(t, "the refusal of the pattern", lineWith(logrus.ErrorLevel, "refused network *.evil.example of evil"))
	at.rootLog.waitLog(t, "the refusal at the root", lineWith(logrus.ErrorLevel,
		"refused network 127.0.3.0/24 of gwp-b announced by child relay1: outside the link's accept_networks (127.0.1.0/24,127.0.2.0/24,127.0.9.0/24)", "owner:gwp-b", "l:relay1"))
	if n := at.relayLog.count(lineWith(logrus.ErrorLevel, "configuration error: network")); n != 0 {
		t.Fatalf("%d ties logged at relay1: the copy made a tie", n)
	}
	// Counted once for each announcement that carries them (a whole one
	// may come again: a WHO reply after a TELL).
	if got := at.relay1.Stats().RefusedNetworks; got < 4 {
		t.Errorf("relay1 counted %d refused networks, want at least 4", got)
	}
	if got := at.root.Stats().RefusedNetworks; got < 1 {
		t.Errorf("the root counted %d refused networks, want at least 1", got)
	}

	// Downcalls: site A's address, inside each of evil's claims, reaches
	// site A; gwp-b's network the root refused has no route there,
	// though relay1 routes it.
	if name, rep := at.socksName(t, "127.0.1.7", at.portA); name != "site-a" {
		t.Fatalf("downcall to 127.0.1.7:%d reached %q (reply %d), want site-a", at.portA, name, rep)
	}
	if owner, err := at.relay1.ServedBy("127.0.1.7", at.portA); err != nil || owner != "gwp-a" {
		t.Fatalf("relay1 serves 127.0.1.7 by %q, %v", owner, err)
	}
	if owner, err := at.relay1.ServedBy("127.0.3.7", at.portB3); err != nil || owner != "gwp-b" {
		t.Fatalf("relay1 serves 127.0.3.7 by %q, %v", owner, err)
	}
	if name, rep := at.socksName(t, "127.0.3.7", at.portB3); rep == 0 {
		t.Fatalf("downcall to a network the root does not accept reached %q", name)
	}
}

// TestAcceptedNetworksReconfigured changes what the root accepts from
// relay1 while it serves: the network no longer accepted goes at once,
// the one newly accepted is taken from relay1's next announcement (the
// root asks for it), and the link with its sessions stays.
func TestAcceptedNetworksReconfigured(t *testing.T) {
	checkReleased(t)
	at := startAcceptTree(t)
	held, rep, err := muxtest.SOCKSConnect(at.socks, "127.0.1.7", at.portA, "", "")
	if err != nil || rep != 0 {
		t.Fatalf("socks to site A: reply %d, %v", rep, err)
	}
	defer held.Close()
	if name := readName(t, held); name != "site-a" {
		t.Fatalf("reached %q", name)
	}

	next := at.rootCfg
	next.Links = []mux.LinkConfig{at.rootCfg.Links[0]}
	next.Links[0].AcceptNetworks = []string{"127.0.1.0/24", "127.0.3.0/24"}
	changes, err := at.root.Reconfigure(next, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"networks accepted from relay1 changed (127.0.1.0/24,127.0.3.0/24)"}; !slices.Equal(changes, want) {
		t.Fatalf("changes %q, want %q", changes, want)
	}
	// 127.0.2.0/24 went with the change itself, before any message.
	if got := fmt.Sprint(at.root.Networks()); strings.Contains(got, "127.0.2.0/24") {
		t.Fatalf("after the change the root still has %s", got)
	}
	muxtest.WaitFor(t, 10*time.Second, "the newly accepted network at the root", func() bool {
		owner, err := at.root.ServedBy("127.0.3.7", at.portB3)
		return err == nil && owner == "gwp-b"
	})
	if got, want := fmt.Sprint(at.root.Networks()), "[gwp-a=127.0.1.0/24 gwp-b=127.0.3.0/24]"; got != want {
		t.Fatalf("the root's networks: %s, want %s", got, want)
	}
	if name, rep := at.socksName(t, "127.0.3.7", at.portB3); name != "site-b3" {
		t.Fatalf("downcall to 127.0.3.7 reached %q (reply %d)", name, rep)
	}
	if _, rep := at.socksName(t, "127.0.2.7", 80); rep == 0 {
		t.Fatal("a downcall into the network no longer accepted was opened")
	}
	// The session held across the change still carries bytes both ways.
	_ = held.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := held.Write([]byte("still here\n")); err != nil {
		t.Fatal(err)
	}
	if got := readName(t, held); got != "still here" {
		t.Fatalf("the held session echoed %q", got)
	}
	_ = held.(*net.TCPConn).CloseWrite()
}
