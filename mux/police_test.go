package mux_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// startRootLeaf starts a root with services and entries and a leaf "es-a"
// below it with entries, and waits until the leaf reaches the root.
func startRootLeaf(t *testing.T, services map[string]mux.Service, rootOpts, leafOpts []muxtest.Option) (root, leaf *mux.Node) {
	t.Helper()
	root = muxtest.StartNode(t, mux.Config{Label: "epp", Role: mux.RoleRoot, Tuning: muxtest.FastTuning(),
		Services: services, Links: []mux.LinkConfig{{Peer: "es-a", Listen: "127.0.0.1:0"}}}, rootOpts...)
	leaf = muxtest.StartNode(t, mux.Config{Label: "es-a", Role: mux.RoleLeaf, Tuning: muxtest.FastTuning(),
		Links: []mux.LinkConfig{{Peer: "epp", Parent: true, Dial: root.LinkAddr("es-a").String()}}}, leafOpts...)
	muxtest.WaitFor(t, 10*time.Second, "the leaf's route to the root", func() bool {
		return len(leaf.PathToRoot()) == 1 && root.Routes()["es-a"] == "es-a"
	})
	return root, leaf
}

// echoOnce writes msg on c, half-closes and returns what came back.
func echoOnce(t *testing.T, c net.Conn, msg string) string {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func echo(c *net.TCPConn) { _, _ = io.Copy(c, c) }

func rule(t *testing.T, where string, s mux.ACLRuleSpec) mux.ACLRule {
	t.Helper()
	s.Where = where
	r, err := mux.ParseACLRule(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestServiceRules(t *testing.T) {
	a, b := startTarget(t, echo), startTarget(t, echo)
	portA := strconv.Itoa(a.ln.Addr().(*net.TCPAddr).Port)
	log, sink := captureLog(t)
	log.Logger.SetLevel(logrus.InfoLevel) // denials are logged at level 3
	root, leaf := startRootLeaf(t, map[string]mux.Service{
		"denied": {Addrs: []string{a.ln.Addr().String()},
			Rules: mux.ACL{rule(t, "epp.yaml:12", mux.ACLRuleSpec{Action: "deny", Origins: []string{"es-*"}})}},
		// A rule allows what the allow list alone would deny.
		"ruled": {Addrs: []string{a.ln.Addr().String()}, Allow: []string{"nobody"},
			Rules: mux.ACL{rule(t, "", mux.ACLRuleSpec{Action: "allow", Origins: []string{"es-a"}})}},
		"listed": {Addrs: []string{a.ln.Addr().String()}, Allow: []string{"nobody"}},
		// The first address is denied by its port: the session goes to b.
		"second": {Addrs: []string{a.ln.Addr().String(), b.ln.Addr().String()},
			Rules: mux.ACL{rule(t, "epp.yaml:20", mux.ACLRuleSpec{Action: "deny", Nets: []string{"127.0.0.0/8"}, Ports: []string{portA}})}},
	}, []muxtest.Option{muxtest.WithLog(log)}, nil)
	ctx := context.Background()

	for _, c := range []struct{ svc, reason string }{
		{"denied", "service denied for es-a: denied by rule 0 (epp.yaml:12)"},
		{"listed", "es-a may not use service listed: not in its allow list"},
	} {
		_, err := leaf.Open(ctx, "epp", c.svc)
		var se *mux.StatusError
		if !errors.As(err, &se) || se.Code != mux.StatusDenied || se.Reason != c.reason {
			t.Errorf("open %s: %v; want denied: %s", c.svc, err, c.reason)
		}
	}
	rec := sink.waitLog(t, "the denial by rule 0", func(r logRecord) bool {
		return r.Message == "refused: service denied for es-a: denied by rule 0 (epp.yaml:12)"
	})
	if rec.Data["rule"] != 0 || rec.Data["where"] != "epp.yaml:12" {
		t.Errorf("denial logged with %v", rec.Data)
	}
	if a.accepted.Load() != 0 {
		t.Fatalf("a denied session reached the target (%d connections)", a.accepted.Load())
	}

	c, err := leaf.Open(ctx, "epp", "ruled")
	if err != nil {
		t.Fatalf("open ruled: %v", err)
	}
	if got := echoOnce(t, c, "through a rule"); got != "through a rule" {
		t.Errorf("ruled echoed %q", got)
	}
	_ = c.Close()
	c, err = leaf.Open(ctx, "epp", "second")
	if err != nil {
		t.Fatalf("open second: %v", err)
	}
	if got := echoOnce(t, c, "to b"); got != "to b" {
		t.Errorf("second echoed %q", got)
	}
	_ = c.Close()
	if a.accepted.Load() != 1 || b.accepted.Load() != 1 {
		t.Errorf("connections: a %d (want 1, from ruled), b %d (want 1, from second)", a.accepted.Load(), b.accepted.Load())
	}
	if got := root.Stats().DeniedByRules; got != 2 {
		t.Errorf("DeniedByRules = %d, want 2", got)
	}
	if got := root.Status().Ended["denied"]; got != 2 {
		t.Errorf("sessions ended denied at the root: %d, want 2", got)
	}
	checkNoSessions(t, root, leaf)
}

func TestEntryRulesBySource(t *testing.T) {
	tg := startTarget(t, echo)
	ln := listenEntry(t)
	log, sink := captureLog(t)
	log.Logger.SetLevel(logrus.InfoLevel) // denials are logged at level 3
	root, leaf := startRootLeaf(t, map[string]mux.Service{"echo": {Addrs: []string{tg.ln.Addr().String()}}}, nil,
		[]muxtest.Option{muxtest.WithLog(log), muxtest.WithEntryConfig(ln, mux.EntryConfig{Name: "up", Dest: "epp", Service: "echo",
			Rules: mux.ACL{
				rule(t, "gwp.yaml:30", mux.ACLRuleSpec{Action: "deny", Sources: []string{"127.0.0.2"}}),
				rule(t, "gwp.yaml:33", mux.ACLRuleSpec{Action: "allow", Services: []string{"echo"}, Dests: []string{"ep?"}}),
			}})})
	dial := func(from string) (net.Conn, error) {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err == nil {
			t.Cleanup(func() { _ = c.Close() })
		}
		return c, err
	}
	// The reset may come before the dial returns, or be taken by the
	// write, so that the read sees a plain end.
	if c, err := dial("127.0.0.2"); err == nil {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(c, "hello")
		if b, err := io.ReadAll(c); len(b) != 0 || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("a denied client read %q, %v; want nothing and the end", b, err)
		}
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("a denied client's dial: %v", err)
	}
	rec := sink.waitLog(t, "the denial by rule 0", func(r logRecord) bool {
		return strings.Contains(r.Message, "refused: client 127.0.0.2 of entry up: denied by rule 0 (gwp.yaml:30)")
	})
	if rec.Data["rule"] != 0 {
		t.Errorf("denial logged with %v", rec.Data)
	}
	c, err := dial("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if got := echoOnce(t, c, "allowed"); got != "allowed" {
		t.Errorf("allowed client got %q", got)
	}
	if tg.accepted.Load() != 1 || leaf.Stats().DeniedByRules != 1 {
		t.Errorf("target connections %d (want 1), denials %d (want 1)", tg.accepted.Load(), leaf.Stats().DeniedByRules)
	}
	if got := leaf.Status().Ended["denied"]; got != 1 {
		t.Errorf("sessions ended denied: %d, want 1", got)
	}
	checkNoSessions(t, root, leaf)
}

// remotes records the source address of each connection to a target that
// writes "hi" and closes first.
func sayHi(addrs chan<- string) func(c *net.TCPConn) {
	return func(c *net.TCPConn) {
		addrs <- c.RemoteAddr().String()
		_, _ = io.WriteString(c, "hi")
	}
}

func TestServiceSourcePinned(t *testing.T) {
	addrs := make(chan string, 10)
	tg := startTarget(t, sayHi(addrs))
	src := "127.0.0.1:" + strconv.Itoa(muxtest.FreePort(t))
	root, leaf := startRootLeaf(t, map[string]mux.Service{"hi": {Addrs: []string{tg.ln.Addr().String()}, Source: src}}, nil, nil)
	for i := 0; i < 3; i++ {
		c, err := leaf.Open(context.Background(), "epp", "hi")
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		if got := echoOnce(t, c, ""); got != "hi" {
			t.Errorf("session %d read %q", i, got)
		}
		_ = c.Close()
		if got := <-addrs; got != src {
			t.Errorf("session %d came from %s, want %s", i, got, src)
		}
		muxtest.WaitFor(t, 10*time.Second, "the session to end", func() bool { return root.Sessions() == 0 })
	}
}

func TestLinkSourceAndListenAlso(t *testing.T) {
	port := strconv.Itoa(muxtest.FreePort(t))
	src := "127.0.0.3:" + strconv.Itoa(muxtest.FreePort(t))
	rootCfg := mux.Config{Label: "epp", Role: mux.RoleRoot, Tuning: muxtest.FastTuning(),
		Links: []mux.LinkConfig{{Peer: "es-a", Listen: "127.0.0.1:" + port, ListenAlso: []string{"127.0.0.2:" + port}}}}
	var stopRoot func()
	root := muxtest.StartNode(t, rootCfg, muxtest.WithStop(&stopRoot))
	var stopLeaf func()
	muxtest.StartNode(t, mux.Config{Label: "es-a", Role: mux.RoleLeaf, Tuning: muxtest.FastTuning(),
		Links: []mux.LinkConfig{{Peer: "epp", Parent: true, Dial: "127.0.0.2:" + port, Source: src}}}, muxtest.WithStop(&stopLeaf))
	remote := func(n *mux.Node) string {
		for _, l := range n.Status().Links {
			if l.Up {
				return l.Remote
			}
		}
		return ""
	}
	muxtest.WaitFor(t, 10*time.Second, "the link from the pinned source", func() bool { return remote(root) != "" })
	if got := remote(root); got != src {
		t.Fatalf("the root sees the link from %s, want %s", got, src)
	}
	// The root restarts: the leaf reconnects from the same port.
	stopRoot()
	root = muxtest.StartNode(t, rootCfg)
	muxtest.WaitFor(t, 20*time.Second, "the link again", func() bool { return remote(root) != "" })
	if got := remote(root); got != src {
		t.Fatalf("after the restart the root sees the link from %s, want %s", got, src)
	}
	// The first listen address serves the link too.
	stopLeaf()
	muxtest.WaitFor(t, 10*time.Second, "the link down", func() bool { return remote(root) == "" })
	muxtest.StartNode(t, mux.Config{Label: "es-a", Role: mux.RoleLeaf, Tuning: muxtest.FastTuning(),
		Links: []mux.LinkConfig{{Peer: "epp", Parent: true, Dial: "127.0.0.1:" + port}}})
	muxtest.WaitFor(t, 10*time.Second, "the link on the first address", func() bool { return remote(root) != "" })
	if got := root.LinkAddr("es-a").String(); got != "127.0.0.1:"+port {
		t.Errorf("LinkAddr = %s, want the first listen address", got)
	}
}

func TestSourcePortClash(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	root := muxtest.StartNode(t, mux.Config{Label: "epp", Role: mux.RoleRoot, Tuning: muxtest.FastTuning(),
		Links: []mux.LinkConfig{{Peer: "es-a", Listen: "127.0.0.1:0"}}})
	leaf := muxtest.StartNode(t, mux.Config{Label: "es-a", Role: mux.RoleLeaf, Tuning: muxtest.FastTuning(),
		Links: []mux.LinkConfig{{Peer: "epp", Parent: true, Dial: root.LinkAddr("es-a").String(), Source: held.Addr().String()}}})
	muxtest.WaitFor(t, 10*time.Second, "the clash in the link's last error", func() bool {
		st := leaf.Status()
		return len(st.Links) == 1 && strings.Contains(st.Links[0].LastErr, "source "+held.Addr().String()+" is in use by another socket")
	})
	if up := leaf.Links(); len(up) != 0 {
		t.Errorf("links up %v with a clashing source", up)
	}
}

// Police is what a dynamic entry calls for each destination its client
// names: default deny, each denial logged with its rule and counted.
func TestPoliceDefaultDeny(t *testing.T) {
	log, sink := captureLog(t)
	log.Logger.SetLevel(logrus.InfoLevel)
	n := muxtest.StartNode(t, mux.Config{Label: "epp", Role: mux.RoleRoot, Tuning: muxtest.FastTuning()}, muxtest.WithLog(log))
	acl := mux.ACL{rule(t, "epp.yaml:7", mux.ACLRuleSpec{Action: "allow", Nets: []string{"10.0.0.0/8"}, Ports: []string{"22"}})}
	if err := n.Police(acl, mux.ACLRequest{Origin: "epp", Host: "10.9.8.7", Port: 22}, false, "destination 10.9.8.7:22", log); err != nil {
		t.Fatalf("an allowed destination: %v", err)
	}
	err := n.Police(acl, mux.ACLRequest{Origin: "epp", Host: "192.0.2.1", Port: 22}, false, "destination 192.0.2.1:22", log)
	var se *mux.StatusError
	if !errors.As(err, &se) || se.Code != mux.StatusDenied || se.Reason != "destination 192.0.2.1:22: denied by default (no rule matched)" {
		t.Fatalf("Police = %v; want denied by default", err)
	}
	rec := sink.waitLog(t, "the default denial", func(r logRecord) bool {
		return r.Message == "refused: destination 192.0.2.1:22: denied by default (no rule matched)"
	})
	if rec.Data["rule"] != -1 || rec.Data["where"] != nil {
		t.Errorf("logged with %v", rec.Data)
	}
	if got := n.Stats().DeniedByRules; got != 1 {
		t.Errorf("DeniedByRules = %d, want 1", got)
	}
}

// Denials by rules are untrusted input at an entry: a flood of them is
// logged in full up to the burst, then summed up with its top sources.
func TestRuleDenialsFloodProof(t *testing.T) {
	log, sink := captureLog(t)
	log.Logger.SetLevel(logrus.InfoLevel)
	tun := muxtest.FastTuning()
	tun.RefusalLogBurst = 2
	var stop func()
	n := muxtest.StartNode(t, mux.Config{Label: "epp", Role: mux.RoleRoot, Tuning: tun}, muxtest.WithLog(log), muxtest.WithStop(&stop))
	deny := mux.ACL{rule(t, "", mux.ACLRuleSpec{Action: "deny"})}
	for i := 0; i < 5; i++ {
		_ = n.Police(deny, mux.ACLRequest{Source: netip.MustParseAddr("192.0.2.7")}, true, "client 192.0.2.7", log)
	}
	if got := n.Stats().DeniedByRules; got != 5 {
		t.Errorf("DeniedByRules = %d, want 5", got)
	}
	stop()
	full := 0
	sink.mu.Lock()
	for _, r := range sink.entries {
		if strings.HasPrefix(r.Message, "refused: client 192.0.2.7") {
			full++
		}
	}
	sink.mu.Unlock()
	if full != 2 {
		t.Errorf("%d denials logged in full, want the burst of 2", full)
	}
	rec, ok := sink.find(func(r logRecord) bool {
		return strings.HasPrefix(r.Message, "3 more sessions denied by rules since")
	})
	if !ok || rec.Data["top"] != "192.0.2.7 x3" || rec.Level != logrus.InfoLevel {
		t.Errorf("summary %v (found %v), want 3 more from 192.0.2.7 at level 3", rec, ok)
	}
}

// TestRefusalBurstFollowsReconfigure: a reconfiguration's refusal_log_burst
// applies to the refusal logs at once: two denials in full at a burst of
// 2, then, raised to 4, two more in the same interval.
func TestRefusalBurstFollowsReconfigure(t *testing.T) {
	log, sink := captureLog(t)
	log.Logger.SetLevel(logrus.InfoLevel)
	tun := muxtest.FastTuning()
	tun.RefusalLogBurst = 2
	cfg := mux.Config{Label: "epp", Role: mux.RoleRoot, Tuning: tun}
	var stop func()
	n := muxtest.StartNode(t, cfg, muxtest.WithLog(log), muxtest.WithStop(&stop))
	deny := mux.ACL{rule(t, "", mux.ACLRuleSpec{Action: "deny"})}
	full := func() int {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		k := 0
		for _, r := range sink.entries {
			if strings.HasPrefix(r.Message, "refused: client 192.0.2.7") {
				k++
			}
		}
		return k
	}
	for range 3 {
		_ = n.Police(deny, mux.ACLRequest{Source: netip.MustParseAddr("192.0.2.7")}, true, "client 192.0.2.7", log)
	}
	if k := full(); k != 2 {
		t.Fatalf("%d denials logged in full, want the burst of 2", k)
	}
	cfg.Tuning.RefusalLogBurst = 4
	muxtest.WaitFor(t, 10*time.Second, "the node to take the reconfiguration", func() bool {
		_, err := n.Reconfigure(cfg, time.Second)
		return err == nil
	})
	for range 3 {
		_ = n.Police(deny, mux.ACLRequest{Source: netip.MustParseAddr("192.0.2.7")}, true, "client 192.0.2.7", log)
	}
	stop()
	if k := full(); k != 4 {
		t.Errorf("%d denials logged in full, want 4 once the burst is 4", k)
	}
}

// An entry on two listeners is removed whole: neither address takes a
// client any more.
func TestRemoveEntryOnTwoListeners(t *testing.T) {
	tg := startTarget(t, echo)
	ln1, ln2 := listenEntry(t), listenEntry(t)
	ec := mux.EntryConfig{Name: "up", Dest: "epp", Service: "echo"}
	root, leaf := startRootLeaf(t, map[string]mux.Service{"echo": {Addrs: []string{tg.ln.Addr().String()}}}, nil,
		[]muxtest.Option{muxtest.WithEntryConfig(ln1, ec), muxtest.WithEntryConfig(ln2, ec)})
	for _, ln := range []net.Listener{ln1, ln2} {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if got := echoOnce(t, c, "both"); got != "both" {
			t.Errorf("through %s: %q", ln.Addr(), got)
		}
		_ = c.Close()
	}
	if !leaf.RemoveEntry("up", time.Second) {
		t.Fatal("RemoveEntry: no entry up")
	}
	for _, ln := range []net.Listener{ln1, ln2} {
		if c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second); err == nil {
			_ = c.Close()
			t.Errorf("%s still takes clients after RemoveEntry", ln.Addr())
		}
	}
	if leaf.RemoveEntry("up", time.Second) {
		t.Error("RemoveEntry found up a second time")
	}
	checkNoSessions(t, root, leaf)
}
