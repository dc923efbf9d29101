package mux_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// addrTree is root <- relay1 <- {gwp-a, gwp-b}: gwp-a serves 127.0.1.0/24
// and gwp-b 127.0.2.0/24 and *.b.example, told up through relay1; the
// root has a SOCKS5 and an HTTP CONNECT entry that pick the gwproxy by
// the destination address.
type addrTree struct {
	root, r1, a, b *mux.Node
	socks, connect string // entry addresses
	logs           map[string]*logSink
	backA, backB   net.Listener // name servers at 127.0.1.7 and 127.0.2.7
	portA, portB   uint16
}

// allowAll is the rule of an entry that takes the destination from its
// client and lets its clients reach anything (it denies by default).
var allowAll = mux.ACL{{Allow: true, Where: "test:1"}}

// nameServer listens on ip:0 and writes name to each connection, then
// echoes what it reads until the client half-closes, then closes.
func nameServer(t *testing.T, ip, name string) (net.Listener, uint16) {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Skipf("cannot listen on %s: %v", ip, err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.WriteString(c, name+"\n")
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln, uint16(ln.Addr().(*net.TCPAddr).Port)
}

func startAddrTree(t *testing.T, aServes, bServes []string) *addrTree {
	t.Helper()
	return startAddrTreeWith(t, aServes, bServes, addrTreeRules{socks: allowAll, connect: allowAll})
}

// addrTreeRules are the rules of an addrTree: its entries' and gwp-a's on
// the networks it serves.
type addrTreeRules struct {
	socks, connect mux.ACL
	where          string // of both entries
	aServes        mux.ACL

	resolver mux.Resolver // of gwp-a and gwp-b; nil: the system's

	hashes map[string]string // bcrypt hashes by user, of both entries
}

func startAddrTreeWith(t *testing.T, aServes, bServes []string, rules addrTreeRules) *addrTree {
	t.Helper()
	tun := muxtest.FastTuning()
	at := &addrTree{logs: map[string]*logSink{}}
	at.backA, at.portA = nameServer(t, "127.0.1.7", "site-a")
	at.backB, at.portB = nameServer(t, "127.0.2.7", "site-b")
	start := func(cfg mux.Config, opts ...muxtest.Option) *mux.Node {
		log, sink := captureLog(t)
		log.Logger.SetLevel(logrus.InfoLevel) // denials are logged at level 3
		at.logs[cfg.Label] = sink
		return muxtest.StartNode(t, cfg, append([]muxtest.Option{muxtest.WithLog(log)}, opts...)...)
	}
	at.r1 = start(mux.Config{Label: "relay1", Role: mux.RoleRelay, Tuning: tun, Links: []mux.LinkConfig{
		{Peer: "root", Parent: true, Listen: "127.0.0.1:0"},
		{Peer: "gwp-a", Listen: "127.0.0.1:0", AcceptNetworks: []string{mux.AnyNetwork}},
		{Peer: "gwp-b", Listen: "127.0.0.1:0", AcceptNetworks: []string{mux.AnyNetwork}},
	}})
	sl, cl := listenEntry(t), listenEntry(t)
	at.socks, at.connect = sl.Addr().String(), cl.Addr().String()
	at.root = start(mux.Config{Label: "root", Role: mux.RoleRoot, Tuning: tun, Links: []mux.LinkConfig{
		{Peer: "relay1", Dial: at.r1.LinkAddr("root").String(), AcceptNetworks: []string{mux.AnyNetwork}},
	}}, muxtest.WithAddrEntry(sl, mux.AddrEntry{Name: "socks", Kind: mux.EntrySOCKS5, Rules: rules.socks, Where: rules.where, PasswordHashes: rules.hashes}),
		muxtest.WithAddrEntry(cl, mux.AddrEntry{Name: "connect", Kind: mux.EntryHTTPConnect, Users: map[string]string{"ops": "s3cret"}, Rules: rules.connect, Where: rules.where, PasswordHashes: rules.hashes}))
	at.a = start(mux.Config{Label: "gwp-a", Role: mux.RoleLeaf, Tuning: tun, Serves: aServes, ServesRules: rules.aServes, Resolver: rules.resolver, Links: []mux.LinkConfig{
		{Peer: "relay1", Parent: true, Dial: at.r1.LinkAddr("gwp-a").String()},
	}})
	at.b = start(mux.Config{Label: "gwp-b", Role: mux.RoleLeaf, Tuning: tun, Serves: bServes, Resolver: rules.resolver, Links: []mux.LinkConfig{
		{Peer: "relay1", Parent: true, Dial: at.r1.LinkAddr("gwp-b").String()},
	}})
	want := len(aServes) + len(bServes)
	muxtest.WaitFor(t, 10*time.Second, "the networks to reach the root", func() bool {
		return len(at.root.Networks()) == want && len(at.r1.Networks()) == want
	})
	t.Cleanup(func() { checkNoSessions(t, at.root, at.r1, at.a, at.b) })
	return at
}

// readName reads the first line the name server sent.
func readName(t *testing.T, c net.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b []byte
	one := make([]byte, 1)
	for len(b) < 64 {
		if _, err := io.ReadFull(c, one); err != nil {
			t.Fatalf("read the name: %v (after %q)", err, b)
		}
		if one[0] == '\n' {
			break
		}
		b = append(b, one[0])
	}
	_ = c.SetReadDeadline(time.Time{})
	return string(b)
}

func TestAddrEntriesRouteByServedNetwork(t *testing.T) {
	// localhost resolves to loopback, which gwp-a dials only as a rule
	// whose nets hold the address allows.
	allowLo := mux.ACL{rule(t, "gwp.yaml:9", mux.ACLRuleSpec{Action: "allow", Nets: []string{"127.0.0.1"}})}
	at := startAddrTreeWith(t, []string{"127.0.1.0/24", "localhost"}, []string{"127.0.2.0/24", "*.b.example"},
		addrTreeRules{socks: allowAll, connect: allowAll, aServes: allowLo})
	if got := at.root.Networks(); len(got) != 4 || got[0] != (mux.NetAd{Owner: "gwp-a", Network: "127.0.1.0/24"}) {
		t.Fatalf("root's networks: %v", got)
	}
	if st := at.root.Status(); st.Networks != 4 || len(st.Serves) != 0 {
		t.Fatalf("root's status: %d networks, serves %v", st.Networks, st.Serves)
	}
	if st := at.a.Status(); st.Networks != 2 || strings.Join(st.Serves, " ") != "127.0.1.0/24 localhost" {
		t.Fatalf("gwp-a's status: %d networks, serves %v", st.Networks, st.Serves)
	}
	for _, c := range []struct {
		host string
		port uint16
		want string
	}{{"127.0.1.7", at.portA, "site-a"}, {"127.0.2.7", at.portB, "site-b"}} {
		conn, rep, err := muxtest.SOCKSConnect(at.socks, c.host, c.port, "", "")
		if err != nil || rep != 0 {
			t.Fatalf("socks to %s: rep %d, %v", c.host, rep, err)
		}
		if got := readName(t, conn); got != c.want {
			t.Fatalf("socks to %s reached %q, want %q", c.host, got, c.want)
		}
		// Half-close: the echo of the last bytes still arrives, then EOF.
		_, _ = io.WriteString(conn, "last words")
		_ = conn.(*net.TCPConn).CloseWrite()
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		rest, err := io.ReadAll(conn)
		if err != nil || string(rest) != "last words" {
			t.Fatalf("after half-close: %q, %v", rest, err)
		}
		_ = conn.Close()

		hc, status, err := muxtest.HTTPConnect(at.connect, c.host, c.port, "ops", "s3cret")
		if err != nil || status != 200 {
			t.Fatalf("connect to %s: %d, %v", c.host, status, err)
		}
		if got := readName(t, hc); got != c.want {
			t.Fatalf("connect to %s reached %q, want %q", c.host, got, c.want)
		}
		_ = hc.Close()
	}
	// Outside every network: network unreachable, 502; a wrong password: 407.
	if _, rep, err := muxtest.SOCKSConnect(at.socks, "127.0.3.7", 22, "", ""); err != nil || rep != 3 {
		t.Fatalf("socks outside the networks: rep %d, %v; want 3 (network unreachable)", rep, err)
	}
	if _, status, err := muxtest.HTTPConnect(at.connect, "127.0.3.7", 22, "ops", "s3cret"); err != nil || status != 502 {
		t.Fatalf("connect outside the networks: %d, %v; want 502", status, err)
	}
	if _, status, err := muxtest.HTTPConnect(at.connect, "127.0.1.7", at.portA, "ops", "wrong"); err != nil || status != 407 {
		t.Fatalf("connect with a wrong password: %d, %v; want 407", status, err)
	}
	// A name: gwp-a serves localhost, and resolves it itself (its rule
	// allows 127.0.0.1).
	_, portL := nameServer(t, "127.0.0.1", "local-a")
	conn, rep, err := muxtest.SOCKSConnect(at.socks, "localhost", portL, "", "")
	if err != nil || rep != 0 {
		t.Fatalf("socks to localhost: rep %d, %v", rep, err)
	}
	if got := readName(t, conn); got != "local-a" {
		t.Fatalf("socks to localhost reached %q", got)
	}
	_ = conn.Close()
	// A closed port at a served address: connection refused.
	closed := muxtest.FreePort(t)
	if _, rep, err := muxtest.SOCKSConnect(at.socks, "127.0.1.7", uint16(closed), "", ""); err != nil || rep != 5 {
		t.Fatalf("socks to a closed port: rep %d, %v; want 5 (connection refused)", rep, err)
	}
}

// A destination that the root would not route to gwp-a, put in an open
// header to gwp-a by hand: a hop on the way refuses it (relay1 routes
// that address to gwp-b), and, from gwp-a's parent itself, gwp-a's own
// networks refuse it.
func TestForgedDestinationRefusedByServingNode(t *testing.T) {
	at := startAddrTree(t, []string{"127.0.1.0/24"}, []string{"127.0.2.0/24"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := at.root.OpenAddr(ctx, "gwp-a", "127.0.2.7", at.portB)
	var se *mux.StatusError
	if !errors.As(err, &se) || se.Code != mux.StatusNoRoute || se.Node != "relay1" {
		t.Fatalf("forged destination from the root: %v; want no route at relay1", err)
	}
	at.logs["relay1"].waitLog(t, "the refusal at relay1", errorWith("127.0.2.7", "served by gwp-b here, not gwp-a"))
	_, err = at.r1.OpenAddr(ctx, "gwp-a", "127.0.2.7", at.portB)
	if !errors.As(err, &se) || se.Code != mux.StatusDenied || se.Node != "gwp-a" {
		t.Fatalf("forged destination from relay1: %v; want denied at gwp-a", err)
	}
	at.logs["gwp-a"].waitLog(t, "the refusal at gwp-a", errorWith("127.0.2.7", "not in the networks gwp-a serves"))
	if got := at.a.Stats().DeniedDestinations; got != 1 {
		t.Fatalf("gwp-a counted %d denied destinations, want 1", got)
	}
	// The same through the right node works.
	c, err := at.root.OpenAddr(ctx, "gwp-b", "127.0.2.7", at.portB)
	if err != nil {
		t.Fatalf("open to gwp-b: %v", err)
	}
	if got := readName(t, c); got != "site-b" {
		t.Fatalf("reached %q", got)
	}
	_ = c.Close()
}

// The most specific network wins; two nodes equally specific are a
// configuration error: refused, and logged at the root.
func TestServedNetworksMostSpecificAndTies(t *testing.T) {
	at := startAddrTree(t,
		[]string{"127.0.0.0/8", "db.site.example", "10.1.0.0/16:22", "127.0.9.0/24"},
		[]string{"127.0.2.0/24", "*.site.example", "10.1.0.0/16", "127.0.9.0/24"})
	for _, c := range []struct {
		host string
		port uint16
		want string
	}{
		{"127.0.2.7", 80, "gwp-b"}, {"127.0.5.1", 80, "gwp-a"},
		{"db.site.example", 5432, "gwp-a"}, {"web.site.example", 443, "gwp-b"},
		{"10.1.2.3", 22, "gwp-a"}, {"10.1.2.3", 23, "gwp-b"},
	} {
		if got, err := at.root.ServedBy(c.host, c.port); err != nil || got != c.want {
			t.Errorf("%s:%d served by %q (%v), want %s", c.host, c.port, got, err, c.want)
		}
	}
	if got, err := at.root.ServedBy("127.0.9.1", 80); err == nil || !strings.Contains(err.Error(), "gwp-a and gwp-b") {
		t.Fatalf("a tie: %q, %v; want an error naming both", got, err)
	}
	at.logs["root"].waitLog(t, "the tie at the root", func(r logRecord) bool {
		return r.Level == logrus.ErrorLevel && strings.Contains(r.Message, "configuration error: network 127.0.9.0/24 is served by both")
	})
	if _, rep, err := muxtest.SOCKSConnect(at.socks, "127.0.9.1", 80, "", ""); err != nil || rep != 3 {
		t.Fatalf("socks to a tied network: rep %d, %v; want 3", rep, err)
	}
	if _, err := at.root.ServedBy("site.example", 80); err == nil {
		t.Fatal("a pattern matched the name it is under")
	}
}

// A child may announce networks only for labels of its own subtree; what
// it announces for others is refused and logged, the rest taken and
// passed up; a delta takes a network back; more networks than the cap is
// refused whole.
func TestChildAnnouncesNetworksOfOthers(t *testing.T) {
	checkReleased(t)
	d := startDistrustTree(t, func(tun *mux.Tuning) { tun.MaxLabelsPerLink = 4 })
	evil := dialScripted(t, d.childAddr, "evil", mux.RoleLeaf, false)
	evil.send(mux.CtrlMsg{Type: mux.CtrlWhoReply, Labels: []string{"evil", "ghost"}, Nets: []mux.NetAd{
		{Owner: "evil", Network: "10.9.0.0/16"},
		{Owner: "ghost", Network: "*.ghost.example"},
		{Owner: "gwp-a", Network: "10.1.0.0/16"},
		{Owner: "root", Network: "10.2.0.0/16"},
	}})
	want := []mux.NetAd{{Owner: "evil", Network: "10.9.0.0/16"}, {Owner: "ghost", Network: "*.ghost.example"}}
	muxtest.WaitFor(t, 10*time.Second, "evil's own networks at the root", func() bool {
		return fmt.Sprint(d.root.Networks()) == fmt.Sprint(want)
	})
	if got := d.relay1.Networks(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("relay1's networks: %v, want %v", got, want)
	}
	// gwp-a's network goes with the label evil may not claim (the own
	// label of another child link); root's is not in evil's subtree.
	d.rlog.waitLog(t, "the refusal of gwp-a's network", lineWith(logrus.ErrorLevel, "refused network 10.1.0.0/16 of gwp-a announced by child evil"))
	d.rlog.waitLog(t, "the refusal of root's network", lineWith(logrus.ErrorLevel, "refused 1 networks announced by child evil", "root=10.2.0.0/16"))
	if got, err := d.root.ServedBy("10.1.2.3", 22); err == nil {
		t.Fatalf("10.1.2.3 served by %s: a network announced for gwp-a by another child", got)
	}
	if got, err := d.root.ServedBy("www.ghost.example", 443); err != nil || got != "ghost" {
		t.Fatalf("www.ghost.example served by %q, %v", got, err)
	}

	evil.send(mux.CtrlMsg{Type: mux.CtrlDelta, Seq: 1, NetsRemoved: []mux.NetAd{{Owner: "evil", Network: "10.9.0.0/16"}}})
	muxtest.WaitFor(t, 10*time.Second, "the network removed at the root", func() bool { return len(d.root.Networks()) == 1 })

	many := []mux.NetAd{}
	for i := range 5 {
		many = append(many, mux.NetAd{Owner: "evil", Network: fmt.Sprintf("10.%d.0.0/16", 20+i)})
	}
	evil.send(mux.CtrlMsg{Type: mux.CtrlDelta, Seq: 2, Nets: many})
	d.rlog.waitLog(t, "the cap", lineWith(logrus.ErrorLevel, "TELL delta refused whole", "networks through one link, at most 4"))
	if got := d.root.Networks(); len(got) != 1 {
		t.Fatalf("after a delta over the cap the root has %v", got)
	}
}

// An upcall entry on a leaf that takes the destination from its client
// sends every session to the root, which dials only what it serves.
func TestUpcallAddrEntryToRoot(t *testing.T) {
	_, port := nameServer(t, "127.0.0.1", "gateway")
	tun := muxtest.FastTuning()
	rlog, rsink := captureLog(t)
	root := muxtest.StartNode(t, mux.Config{Label: "root", Role: mux.RoleRoot, Tuning: tun, Serves: []string{"127.0.0.1/32"},
		Links: []mux.LinkConfig{{Peer: "gwp-a", Listen: "127.0.0.1:0"}}}, muxtest.WithLog(rlog))
	ln := listenEntry(t)
	leaf := muxtest.StartNode(t, mux.Config{Label: "gwp-a", Role: mux.RoleLeaf, Tuning: tun,
		Links: []mux.LinkConfig{{Peer: "root", Parent: true, Dial: root.LinkAddr("gwp-a").String()}}},
		muxtest.WithAddrEntry(ln, mux.AddrEntry{Name: "up", Kind: mux.EntrySOCKS5, Dest: "root", Users: map[string]string{"ep": "pw"}, Rules: allowAll}))
	muxtest.WaitFor(t, 10*time.Second, "the link", func() bool { return len(leaf.PathToRoot()) == 1 })
	conn, rep, err := muxtest.SOCKSConnect(ln.Addr().String(), "127.0.0.1", port, "ep", "pw")
	if err != nil || rep != 0 {
		t.Fatalf("socks upcall: rep %d, %v", rep, err)
	}
	if got := readName(t, conn); got != "gateway" {
		t.Fatalf("reached %q", got)
	}
	_ = conn.Close()
	if _, _, err := muxtest.SOCKSConnect(ln.Addr().String(), "127.0.0.1", port, "ep", "wrong"); err == nil || !strings.Contains(err.Error(), "auth refused") {
		t.Fatalf("a wrong password: %v", err)
	}
	if _, rep, err := muxtest.SOCKSConnect(ln.Addr().String(), "127.0.0.2", port, "ep", "pw"); err != nil || rep != 2 {
		t.Fatalf("an address the root does not serve: rep %d, %v; want 2 (not allowed)", rep, err)
	}
	rsink.waitLog(t, "the refusal at the root", errorWith("127.0.0.2", "not in the networks root serves"))
	checkNoSessions(t, root, leaf)
}

// What a client of an entry may get wrong, and the answer it gets; bytes
// a client sends right after its CONNECT request belong to the session.
func TestAddrEntryBadRequests(t *testing.T) {
	at := startAddrTree(t, []string{"127.0.1.0/24"}, []string{"127.0.2.0/24"})
	exchange := func(addr string, send []byte, want int) []byte {
		t.Helper()
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(send); err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(io.LimitReader(c, int64(want)))
		return got
	}
	for _, c := range []struct {
		name string
		send string
		want string
	}{
		{"BIND", "\x05\x01\x00\x05\x02\x00\x01\x7f\x00\x01\x07\x00\x16", "\x05\x00\x05\x07"},
		{"address type 5", "\x05\x01\x00\x05\x01\x00\x05\x7f\x00\x01\x07\x00\x16", "\x05\x00\x05\x08"},
		{"only username/password offered", "\x05\x01\x02", "\x05\xff"},
	} {
		if got := exchange(at.socks, []byte(c.send), len(c.want)); string(got) != c.want {
			t.Errorf("socks %s: got %q, want %q", c.name, got, c.want)
		}
	}
	for _, c := range []struct {
		name string
		send string
		want string
	}{
		{"GET", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 405 "},
		{"garbage", "hello there\r\n\r\n", "HTTP/1.1 400 "},
		{"no port", "CONNECT 127.0.1.7 HTTP/1.1\r\n\r\n", "HTTP/1.1 400 "},
		{"huge", "CONNECT 127.0.1.7:1 HTTP/1.1\r\nX: " + strings.Repeat("x", 9000) + "\r\n\r\n", "HTTP/1.1 431 "},
		{"no credentials", "CONNECT 127.0.1.7:1 HTTP/1.1\r\n\r\n", "HTTP/1.1 407 "},
	} {
		if got := exchange(at.connect, []byte(c.send), len(c.want)); string(got) != c.want {
			t.Errorf("connect %s: got %q, want %q", c.name, got, c.want)
		}
	}
	// Early data: the request and the first bytes of the session in one write.
	c, err := net.DialTimeout("tcp", at.connect, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	auth := "Proxy-Authorization: Basic b3BzOnMzY3JldA==\r\n" // ops:s3cret
	req := "CONNECT 127.0.1.7:" + fmt.Sprint(at.portA) + " HTTP/1.1\r\n" + auth + "\r\nearly bytes"
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).CloseWrite()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	want := "HTTP/1.1 200 Connection established\r\n\r\nsite-a\nearly bytes"
	if err != nil || string(got) != want {
		t.Fatalf("early data: got %q, %v; want %q", got, err, want)
	}
}

// Clients of an address entry that connect and say nothing hold at most
// max_hellos_per_source places from one source: the next connection from
// it is closed at once, counted in the refusal summary, and once the
// silent ones are gone a real request goes through.
func TestAddrEntryCapsSilentClients(t *testing.T) {
	at := startAddrTree(t, []string{"127.0.1.0/24"}, []string{"127.0.2.0/24"})
	perSource := muxtest.FastTuning().MaxHellosPerSource
	var silent []net.Conn
	for range perSource {
		c, err := net.DialTimeout("tcp", at.socks, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		silent = append(silent, c)
	}
	defer func() {
		for _, c := range silent {
			_ = c.Close()
		}
	}()
	// The entry accepts in the order the connections came: the silent ones
	// hold their places before the next one is taken.
	over, err := net.DialTimeout("tcp", at.socks, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	_ = over.SetReadDeadline(time.Now().Add(3 * time.Second)) // below the 5s open timeout the silent ones have
	b := make([]byte, 1)
	if _, err := over.Read(b); err == nil {
		t.Fatal("a client over the cap was answered")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("a client over the cap was held, not closed at once (%d silent clients from one source)", perSource)
	}
	for _, c := range silent {
		_ = c.Close()
	}
	silent = nil
	muxtest.WaitFor(t, 10*time.Second, "a request after the silent clients left", func() bool {
		conn, rep, err := muxtest.SOCKSConnect(at.socks, "127.0.1.7", at.portA, "", "")
		if err != nil || rep != 0 {
			return false
		}
		defer conn.Close()
		return readName(t, conn) == "site-a"
	})
}
