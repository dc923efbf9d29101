package mux_test

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// regTree is root <- {gwp-a, gwp-b}: gwp-a learns its endpoints from its
// upcall entry (to the echo service "up" at the root) and serves no
// network; gwp-b serves bServes. The root has a SOCKS5 entry.
type regTree struct {
	root, a, b *mux.Node
	up         string // gwp-a's upcall entry
	socks      string
	rootLog    *logSink
}

func startRegTree(t *testing.T, ttl time.Duration, bServes []string) *regTree {
	t.Helper()
	tun := muxtest.FastTuning()
	rt := &regTree{}
	echo := startEcho(t)
	sl := listenEntry(t)
	rt.socks = sl.Addr().String()
	log, sink := captureLog(t)
	log.Logger.SetLevel(logrus.InfoLevel) // denials are logged at level 3
	rt.rootLog = sink
	rt.root = muxtest.StartNode(t, mux.Config{Label: "root", Role: mux.RoleRoot, Tuning: tun, EndpointTTL: ttl,
		Services: map[string]mux.Service{"up": {Addrs: []string{echo.ln.Addr().String()}}},
		Links: []mux.LinkConfig{
			{Peer: "gwp-a", Listen: "127.0.0.1:0", AcceptNetworks: []string{"127.0.0.0/8"}},
			{Peer: "gwp-b", Listen: "127.0.0.1:0", AcceptNetworks: []string{mux.AnyNetwork}},
		}}, muxtest.WithLog(log), muxtest.WithAddrEntry(sl, mux.AddrEntry{Name: "socks", Kind: mux.EntrySOCKS5, Rules: allowAll}))
	ul := listenEntry(t)
	rt.up = ul.Addr().String()
	rt.a = muxtest.StartNode(t, mux.Config{Label: "gwp-a", Role: mux.RoleLeaf, Tuning: tun,
		RegisterEndpoints: true, EndpointTTL: ttl, MaxEndpoints: 2,
		Links: []mux.LinkConfig{{Peer: "root", Parent: true, Dial: rt.root.LinkAddr("gwp-a").String()}},
	}, muxtest.WithEntry(ul, "up", "root", "up"))
	rt.b = muxtest.StartNode(t, mux.Config{Label: "gwp-b", Role: mux.RoleLeaf, Tuning: tun, Serves: bServes,
		Links: []mux.LinkConfig{{Peer: "root", Parent: true, Dial: rt.root.LinkAddr("gwp-b").String()}},
	})
	muxtest.WaitFor(t, 10*time.Second, "the networks to reach the root", func() bool {
		r := rt.root.Routes()
		return r["gwp-a"] != "" && r["gwp-b"] != "" && len(rt.root.Networks()) == len(bServes)
	})
	t.Cleanup(func() { checkNoSessions(t, rt.root, rt.a, rt.b) })
	return rt
}

// upcallFrom makes an upcall through gwp-a's entry from the source
// address ip, and checks it carried bytes both ways.
func (rt *regTree) upcallFrom(t *testing.T, ip string) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", rt.up)
	if err != nil {
		t.Skipf("cannot dial from %s: %v", ip, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "hello"); err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "hello" {
		t.Fatalf("upcall from %s: read %q, %v", ip, b, err)
	}
}

func hasNet(ads []mux.NetAd, want string) bool {
	for _, a := range ads {
		if a.String() == want {
			return true
		}
	}
	return false
}

// An endpoint that made an upcall through gwp-a is announced to the root
// as a host route, listed in the root's registry, and reachable by a
// downcall through SOCKS5 and through a port_map entry; the gwproxy dials
// it though it serves no configured network.
func TestEndpointRegistryLearnsAndRoutes(t *testing.T) {
	rt := startRegTree(t, time.Hour, nil)
	_, port := nameServer(t, "127.0.1.7", "endpoint-7")
	rt.upcallFrom(t, "127.0.1.7")
	muxtest.WaitFor(t, 10*time.Second, "the host route at the root", func() bool {
		return hasNet(rt.root.Networks(), "gwp-a=@127.0.1.7")
	})
	eps := rt.root.Endpoints()
	if len(eps) != 1 || eps[0].Addr != netip.MustParseAddr("127.0.1.7") || eps[0].Label != "gwp-a" || !eps[0].Active || eps[0].First.IsZero() {
		t.Fatalf("root registry = %+v", eps)
	}
	if o, err := rt.root.ServedBy("127.0.1.7", port); err != nil || o != "gwp-a" {
		t.Fatalf("ServedBy = %q, %v", o, err)
	}
	select {
	case <-rt.root.EndpointsChanged():
	default:
		t.Error("no signal of the registry's change")
	}

	c, rep, err := muxtest.SOCKSConnect(rt.socks, "127.0.1.7", port, "", "")
	if err != nil || rep != 0 {
		t.Fatalf("socks to the endpoint: reply %d, %v", rep, err)
	}
	if got := readName(t, c); got != "endpoint-7" {
		t.Errorf("socks reached %q", got)
	}
	_ = c.Close()

	// A port_map entry denies by default: without a rule that allows its
	// client, the connection is reset and nothing reaches the endpoint.
	dl := listenEntry(t)
	rt.root.AddAddrEntry(dl, mux.AddrEntry{Name: "pm-deny", Kind: mux.EntryPortMap, Host: "127.0.1.7", Port: port, Where: "test:2"})
	// (The reset may come before the dial has returned.)
	if dc, err := net.DialTimeout("tcp", dl.Addr().String(), 10*time.Second); err == nil {
		_ = dc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if b, _ := io.ReadAll(dc); len(b) != 0 {
			t.Errorf("a port_map entry without rules carried %q", b)
		}
		_ = dc.Close()
	}
	rt.rootLog.waitLog(t, "the port_map client's default deny", func(r logRecord) bool {
		return strings.Contains(fmt.Sprint(r.Message, r.Data), "default deny")
	})

	pl := listenEntry(t)
	rt.root.AddAddrEntry(pl, mux.AddrEntry{Name: "pm", Kind: mux.EntryPortMap, Host: "127.0.1.7", Port: port, Rules: allowAll})
	pc, err := net.DialTimeout("tcp", pl.Addr().String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := readName(t, pc); got != "endpoint-7" {
		t.Errorf("port_map reached %q", got)
	}
	_ = pc.Close()

	// An address never seen is in no network: no route.
	c, rep, err = muxtest.SOCKSConnect(rt.socks, "127.0.1.8", port, "", "")
	if c != nil {
		_ = c.Close()
	}
	if rep == 0 {
		t.Errorf("socks to an address never seen: reply %d, %v; want a failure", rep, err)
	}
}

// The host route expires when the endpoint has not been seen for the
// TTL: withdrawn at the root, where the registry keeps it as not active
// for one more TTL; the gwproxy no longer dials it.
func TestEndpointRegistryExpires(t *testing.T) {
	const ttl = 300 * time.Millisecond
	rt := startRegTree(t, ttl, nil)
	rt.upcallFrom(t, "127.0.1.9")
	muxtest.WaitFor(t, 10*time.Second, "the host route at the root", func() bool {
		return hasNet(rt.root.Networks(), "gwp-a=@127.0.1.9")
	})
	muxtest.WaitFor(t, 10*time.Second, "the host route to be withdrawn", func() bool {
		return !hasNet(rt.root.Networks(), "gwp-a=@127.0.1.9") && len(rt.a.Endpoints()) == 0
	})
	muxtest.WaitFor(t, 10*time.Second, "the registry to drop the endpoint", func() bool {
		return len(rt.root.Endpoints()) == 0
	})
	if _, err := rt.root.ServedBy("127.0.1.9", 80); err == nil {
		t.Error("an expired endpoint is still routed")
	}
}

// gwp-a learns at most MaxEndpoints (2) addresses; the third is not
// learnt, and counted.
func TestEndpointRegistryCap(t *testing.T) {
	rt := startRegTree(t, time.Hour, nil)
	for _, ip := range []string{"127.0.1.11", "127.0.1.12", "127.0.1.13"} {
		rt.upcallFrom(t, ip)
	}
	muxtest.WaitFor(t, 10*time.Second, "two host routes at the root", func() bool {
		return len(rt.root.Endpoints()) == 2
	})
	if learnt, _ := rt.a.EndpointsRefused(); learnt != 1 {
		t.Errorf("refused %d endpoints, want 1", learnt)
	}
	if hasNet(rt.root.Networks(), "gwp-a=@127.0.1.13") {
		t.Error("the third endpoint was announced")
	}
}

// A host route in a network another node is configured to serve wins (it
// is more specific), and the root logs the conflict; the rest of the
// network still goes to its configured node.
func TestEndpointHostRouteBeatsConfiguredPrefix(t *testing.T) {
	rt := startRegTree(t, time.Hour, []string{"127.0.1.0/24"})
	rt.upcallFrom(t, "127.0.1.21")
	muxtest.WaitFor(t, 10*time.Second, "the host route at the root", func() bool {
		return hasNet(rt.root.Networks(), "gwp-a=@127.0.1.21")
	})
	if o, err := rt.root.ServedBy("127.0.1.21", 443); err != nil || o != "gwp-a" {
		t.Errorf("the endpoint is served by %q, %v; want gwp-a", o, err)
	}
	if o, err := rt.root.ServedBy("127.0.1.22", 443); err != nil || o != "gwp-b" {
		t.Errorf("the rest of the prefix is served by %q, %v; want gwp-b", o, err)
	}
	rt.rootLog.waitLog(t, "the conflict", func(r logRecord) bool {
		return strings.Contains(r.Message, "endpoint 127.0.1.21 registered by gwp-a lies in network 127.0.1.0/24 configured for gwp-b")
	})
}

// The root's registry takes endpoints kept from an earlier run, not
// active until announced again.
func TestEndpointRegistryLoad(t *testing.T) {
	root := muxtest.StartNode(t, mux.Config{Label: "root", Role: mux.RoleRoot, Tuning: muxtest.FastTuning()})
	first := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	root.LoadEndpoints([]mux.Endpoint{
		{Addr: netip.MustParseAddr("10.0.0.5"), Label: "gwp-a", First: first, Last: first.Add(time.Hour)},
		{Addr: netip.MustParseAddr("10.0.0.6"), Label: "bad label!"},
	})
	eps := root.Endpoints()
	if len(eps) != 1 || eps[0].Label != "gwp-a" || eps[0].Active || !eps[0].First.Equal(first) {
		t.Fatalf("loaded %+v", eps)
	}
}

// A gwproxy that learns its endpoints takes back those it learnt in an
// earlier run: announced again at once, with their first seen time; one
// not seen for the TTL, one of another node, or a bad address is left
// out.
func TestEndpointRegistryLoadOwn(t *testing.T) {
	rt := startRegTree(t, time.Hour, nil)
	first := time.Now().Add(-48 * time.Hour)
	took := rt.a.LoadOwnEndpoints([]mux.Endpoint{
		{Addr: netip.MustParseAddr("127.0.1.31"), Label: "gwp-a", First: first, Last: time.Now().Add(-time.Minute)},
		{Addr: netip.MustParseAddr("127.0.1.32"), Label: "gwp-a", First: first, Last: time.Now().Add(-2 * time.Hour)},
		{Addr: netip.MustParseAddr("127.0.1.33"), Label: "gwp-b", First: first, Last: time.Now()},
		{Label: "gwp-a", Last: time.Now()},
	})
	if took != 1 {
		t.Fatalf("took %d endpoints, want 1", took)
	}
	muxtest.WaitFor(t, 10*time.Second, "the host route at the root", func() bool {
		return hasNet(rt.root.Networks(), "gwp-a=@127.0.1.31")
	})
	eps := rt.a.Endpoints()
	if len(eps) != 1 || !eps[0].First.Equal(first) || !eps[0].Active {
		t.Fatalf("gwp-a's endpoints: %+v", eps)
	}
	for _, gone := range []string{"gwp-a=@127.0.1.32", "gwp-a=@127.0.1.33", "gwp-b=@127.0.1.33"} {
		if hasNet(rt.root.Networks(), gone) {
			t.Errorf("%s announced", gone)
		}
	}
	// A node that does not learn takes none.
	if n := rt.b.LoadOwnEndpoints([]mux.Endpoint{{Addr: netip.MustParseAddr("127.0.1.34"), Label: "gwp-b", Last: time.Now()}}); n != 0 {
		t.Errorf("gwp-b, which does not learn, took %d endpoints", n)
	}
}

// A client on the node's own host, connecting from the address it
// connects to, is not learnt: its host route would open that host to
// downcalls. An endpoint is learnt before its upcall opens.
func TestEndpointRegistrySkipsOwnHost(t *testing.T) {
	rt := startRegTree(t, time.Hour, nil)
	rt.upcallFrom(t, "127.0.0.1")
	if eps := rt.a.Endpoints(); len(eps) != 0 {
		t.Fatalf("learnt %+v from a client on the node's own address", eps)
	}
	rt.upcallFrom(t, "127.0.1.31")
	if eps := rt.a.Endpoints(); len(eps) != 1 || eps[0].Addr.String() != "127.0.1.31" || eps[0].Label != "gwp-a" {
		t.Fatalf("learnt %+v", eps)
	}
}
