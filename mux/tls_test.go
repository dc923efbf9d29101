package mux_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// capture keeps every log line of a node, for tests that assert the reason
// of a refusal in the refusing node's log.
type capture struct {
	mu    sync.Mutex
	lines []string
}

func (c *capture) Levels() []logrus.Level { return logrus.AllLevels }

func (c *capture) Fire(e *logrus.Entry) error {
	s, _ := e.String()
	c.mu.Lock()
	c.lines = append(c.lines, e.Level.String()+" "+s)
	c.mu.Unlock()
	return nil
}

// mark returns how many lines there are now, for waitFrom.
func (c *capture) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.lines)
}

// wait returns the first error line that holds every part, failing the
// test after a deadline.
func (c *capture) wait(t testing.TB, parts ...string) string {
	t.Helper()
	return c.waitFrom(t, 0, parts...)
}

// waitFrom is wait among the lines from line from on.
func (c *capture) waitFrom(t testing.TB, from int, parts ...string) string {
	t.Helper()
	var found string
	muxtest.WaitFor(t, 10*time.Second, "an error line with "+strings.Join(parts, " + "), func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, l := range c.lines[from:] {
			if !strings.HasPrefix(l, "error ") {
				continue
			}
			all := true
			for _, p := range parts {
				all = all && strings.Contains(l, p)
			}
			if all {
				found = l
				return true
			}
		}
		return false
	})
	return found
}

func (c *capture) count(part string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, l := range c.lines {
		if strings.Contains(l, part) {
			n++
		}
	}
	return n
}

// startLogged starts a node whose log lines are also captured.
func startLogged(t testing.TB, cfg mux.Config) (*mux.Node, *capture) {
	t.Helper()
	c := &capture{}
	log := muxtest.Log(t)
	log.Logger.SetLevel(logrus.DebugLevel)
	log.Logger.AddHook(c)
	return muxtest.StartNode(t, cfg, muxtest.WithLog(log)), c
}

func echoHandler(_ context.Context, c *mux.Conn) {
	defer c.Close()
	_, _ = io.Copy(c, c)
	_ = c.CloseWrite()
}

// echoThrough opens a session from n to dest's echo service and checks
// that the bytes come back.
func echoThrough(t testing.TB, n *mux.Node, dest string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := n.Open(ctx, dest, "echo")
	if err != nil {
		t.Fatalf("open %s/echo: %v", dest, err)
	}
	defer c.Close()
	msg := bytes.Repeat([]byte("relaychain over TLS "), 5000)
	go func() {
		_, _ = c.Write(msg)
		_ = c.CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo: %d of %d bytes back, err %v", len(got), len(msg), err)
	}
}

func rootCfg(creds mux.Credentials, links ...mux.LinkConfig) mux.Config {
	return mux.Config{Label: "root", Role: mux.RoleRoot, Tuning: muxtest.FastTuning(), TLS: creds,
		Services: map[string]mux.Service{"echo": {Handler: echoHandler}}, Links: links}
}

func leafCfg(label string, creds mux.Credentials, parent mux.LinkConfig) mux.Config {
	parent.Parent = true
	return mux.Config{Label: label, Role: mux.RoleLeaf, Tuning: muxtest.FastTuning(), TLS: creds, Links: []mux.LinkConfig{parent}}
}

func waitUp(t testing.TB, leaf *mux.Node, root *mux.Node) {
	t.Helper()
	muxtest.WaitFor(t, 10*time.Second, leaf.Label()+" linked to "+root.Label(), func() bool {
		p := leaf.PathToRoot()
		return len(p) > 0 && p[len(p)-1] == root.Label() && root.Routes()[leaf.Label()] != ""
	})
}

func TestTLSLinkCarriesSessions(t *testing.T) {
	ca := muxtest.NewCA(t)
	for _, tt := range []struct {
		name string
		opts muxtest.CertOptions
	}{
		{"uri SAN", muxtest.CertOptions{}},
		{"dns SAN", muxtest.CertOptions{DNSOnly: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root, _ := startLogged(t, rootCfg(ca.Issue(t, "root", tt.opts), mux.LinkConfig{Peer: "gwp-a", Listen: "127.0.0.1:0"}))
			leaf, _ := startLogged(t, leafCfg("gwp-a", ca.Issue(t, "gwp-a", tt.opts), mux.LinkConfig{Peer: "root", Dial: root.LinkAddr("gwp-a").String()}))
			waitUp(t, leaf, root)
			echoThrough(t, leaf, "root")
		})
	}
}

// Pinned links need no CA: each side pins the other's public key and the
// certificates still name the labels.
func TestTLSPinnedWithoutCA(t *testing.T) {
	rootCreds := muxtest.NewCA(t).Issue(t, "root", muxtest.CertOptions{})
	leafCreds := muxtest.NewCA(t).Issue(t, "gwp-a", muxtest.CertOptions{})
	noCA := func(c *mux.StaticCredentials) *mux.StaticCredentials {
		return &mux.StaticCredentials{Cert: c.Cert, Roots: x509.NewCertPool()}
	}
	root, rlog := startLogged(t, rootCfg(noCA(rootCreds), mux.LinkConfig{Peer: "gwp-a", Listen: "127.0.0.1:0",
		Pins: [][32]byte{mux.PublicKeyPin(leafCreds.Cert.Leaf)}}))
	leaf, _ := startLogged(t, leafCfg("gwp-a", noCA(leafCreds), mux.LinkConfig{Peer: "root", Dial: root.LinkAddr("gwp-a").String(),
		Pins: [][32]byte{mux.PublicKeyPin(rootCreds.Cert.Leaf)}}))
	waitUp(t, leaf, root)
	echoThrough(t, leaf, "root")

	// A certificate for the same label with another key is refused.
	other := noCA(muxtest.NewCA(t).Issue(t, "gwp-a", muxtest.CertOptions{}))
	c := tlsClient(t, root.LinkAddr("gwp-a").String(), other, "root")
	assertNothingRead(t, c)
	rlog.wait(t, "is not pinned")
}

// tlsClient dials addr and runs a TLS 1.3 client handshake with creds (nil:
// no certificate), trusting anything: a scripted peer.
func tlsClient(t testing.TB, addr string, creds *mux.StaticCredentials, serverName string) net.Conn {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Close() })
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, ServerName: serverName}
	if creds != nil {
		cfg.Certificates = []tls.Certificate{creds.Cert}
	}
	c := tls.Client(raw, cfg)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_ = c.Handshake() // TLS 1.3: the server's verdict on the client shows at the first read
	return c
}

// assertNothingRead checks that the peer closed without sending a byte of
// application data (no hello, no label, no verdict).
func assertNothingRead(t testing.TB, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if len(b) > 0 {
		t.Fatalf("a refused peer was sent %d bytes: %q", len(b), b)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the connection was not closed")
	}
}

// helloBytes is a plaintext hello (PROTOCOL.md section 1) from label.
func helloBytes(label string, role byte) []byte {
	b := []byte("RLYC")
	b = append(b, mux.ProtoVersion, role, 0, byte(len(label)))
	return append(b, label...)
}

func TestTLSRefusals(t *testing.T) {
	ca := muxtest.NewCA(t)
	root, rlog := startLogged(t, rootCfg(ca.Issue(t, "root", muxtest.CertOptions{}),
		mux.LinkConfig{Peer: "gwp-a", Listen: "127.0.0.1:0"},
		mux.LinkConfig{Peer: "gwp-b", Listen: "127.0.0.1:0"},
		mux.LinkConfig{Peer: "gwp-plain", Listen: "127.0.0.2:0", Plaintext: true}))
	addr := root.LinkAddr("gwp-a").String()
	plainAddr := root.LinkAddr("gwp-plain").String()
	if addr == plainAddr {
		t.Fatal("the test needs two ports")
	}

	for _, tt := range []struct {
		name  string
		creds *mux.StaticCredentials
		want  []string // in the root's error line
	}{
		{"no certificate", nil, []string{"link connection refused", "didn't provide a certificate"}},
		{"another CA", muxtest.NewCA(t).Issue(t, "gwp-a", muxtest.CertOptions{}), []string{"link connection refused", "gwp-a", "unknown authority"}},
		{"expired", ca.Issue(t, "gwp-a", muxtest.CertOptions{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}),
			[]string{"link connection refused", "gwp-a", "expired"}},
		{"not for client use", ca.Issue(t, "gwp-a", muxtest.CertOptions{Usage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}),
			[]string{"link connection refused", "gwp-a", "key usage"}},
		{"a label of no link here", ca.Issue(t, "relay-x", muxtest.CertOptions{}), []string{"link connection refused", "relay-x", "names no link of this port"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			from := rlog.mark()
			c := tlsClient(t, addr, tt.creds, "root")
			_, _ = c.Write(helloBytes("gwp-a", 3))
			assertNothingRead(t, c)
			line := rlog.waitFrom(t, from, tt.want...)
			if !strings.Contains(line, `addr="127.0.0.1:`) {
				t.Errorf("the refusal does not name the peer's address: %s", line)
			}
		})
	}

	t.Run("plaintext hello to a TLS port", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = c.Write(helloBytes("gwp-a", 3))
		assertNothingRead(t, c)
		rlog.wait(t, "link connection refused", "plaintext connection on a TLS link port")
	})

	t.Run("TLS to a plaintext port", func(t *testing.T) {
		c := tlsClient(t, plainAddr, ca.Issue(t, "gwp-plain", muxtest.CertOptions{}), "root")
		assertNothingRead(t, c)
		rlog.wait(t, "link connection refused", "TLS connection on a plaintext link port")
	})

	// A real node of the tree with a valid certificate claims its
	// neighbour's label in the hello.
	t.Run("valid certificate, neighbour's label", func(t *testing.T) {
		c := tlsClient(t, addr, ca.Issue(t, "gwp-b", muxtest.CertOptions{}), "root")
		_, _ = c.Write(helloBytes("gwp-a", 3))
		b, _ := io.ReadAll(c)
		if bytes.Contains(b, []byte("gwp-a,")) || bytes.Contains(b, []byte("expected")) {
			t.Fatalf("the refusal lists this port's labels: %q", b)
		}
		rlog.wait(t, "hello names gwp-a but the certificate names gwp-b")
		if got := root.Links(); len(got) != 0 {
			t.Fatalf("links up after the impostor: %v", got)
		}
	})
}

// The dialling side refuses a server whose certificate does not name the
// label its link is configured for, and the real node still gets its link.
func TestTLSDialerRefusesWrongServer(t *testing.T) {
	ca := muxtest.NewCA(t)
	impostor, ilog := startLogged(t, rootCfg(ca.Issue(t, "relay-x", muxtest.CertOptions{}), mux.LinkConfig{Peer: "gwp-a", Listen: "127.0.0.1:0"}))
	_ = impostor
	leaf, llog := startLogged(t, leafCfg("gwp-a", ca.Issue(t, "gwp-a", muxtest.CertOptions{}), mux.LinkConfig{Peer: "root", Dial: impostor.LinkAddr("gwp-a").String()}))
	llog.wait(t, "handshake failed", "certificate names relay-x, not root")
	if got := leaf.Links(); len(got) != 0 {
		t.Fatalf("leaf linked to an impostor: %v", got)
	}
	if ilog.count("link up") != 0 {
		t.Fatal("the impostor got a link")
	}
}

// An impostor with a valid certificate for one label can take neither
// another label's link nor the parent side of a link.
func TestTLSImpostorTakesNoLink(t *testing.T) {
	ca := muxtest.NewCA(t)
	// The relay listens for its parent (the root dials it) and for gwp-a.
	relay, rlog := startLogged(t, mux.Config{Label: "relay", Role: mux.RoleRelay, Tuning: muxtest.FastTuning(),
		TLS: ca.Issue(t, "relay", muxtest.CertOptions{}),
		Links: []mux.LinkConfig{
			{Peer: "root", Parent: true, Listen: "127.0.0.1:0"},
			{Peer: "gwp-a", Listen: "127.0.0.1:0"},
		}})
	stolen := ca.Issue(t, "gwp-b", muxtest.CertOptions{}) // a real leaf's certificate

	for _, tt := range []struct {
		name, port, hello string
		role              byte
		want              string
	}{
		{"parent side", relay.LinkAddr("root").String(), "root", 1, "names no link of this port"},
		{"another child's link", relay.LinkAddr("gwp-a").String(), "gwp-a", 3, "names no link of this port"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := tlsClient(t, tt.port, stolen, "relay")
			_, _ = c.Write(helloBytes(tt.hello, tt.role))
			assertNothingRead(t, c)
			rlog.wait(t, "gwp-b", tt.want)
		})
	}
	if got := relay.Links(); len(got) != 0 {
		t.Fatalf("links up: %v", got)
	}

	// The real nodes link as before.
	root, _ := startLogged(t, rootCfg(ca.Issue(t, "root", muxtest.CertOptions{}), mux.LinkConfig{Peer: "relay", Dial: relay.LinkAddr("root").String()}))
	leaf, _ := startLogged(t, leafCfg("gwp-a", ca.Issue(t, "gwp-a", muxtest.CertOptions{}), mux.LinkConfig{Peer: "relay", Dial: relay.LinkAddr("gwp-a").String()}))
	muxtest.WaitFor(t, 10*time.Second, "the tree", func() bool { return root.Routes()["gwp-a"] == "relay" })
	echoThrough(t, leaf, "root")
}

// cutter forwards TCP connections to a target and can cut them all.
type cutter struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func startCutter(t testing.TB, target string) *cutter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{ln: ln}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			a, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", target)
			if err != nil {
				_ = a.Close()
				continue
			}
			c.mu.Lock()
			c.conns = append(c.conns, a, b)
			c.mu.Unlock()
			c.wg.Add(2)
			go func() { defer c.wg.Done(); _, _ = io.Copy(b, a); _ = b.Close() }()
			go func() { defer c.wg.Done(); _, _ = io.Copy(a, b); _ = a.Close() }()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		c.cut()
		c.wg.Wait()
	})
	return c
}

func (c *cutter) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, x := range c.conns {
		_ = x.Close()
	}
	c.conns = nil
}

// Rotation: new credentials take effect at the next handshake while the
// link that is up stays up.
func TestTLSRotation(t *testing.T) {
	ca := muxtest.NewCA(t)
	root, rlog := startLogged(t, rootCfg(ca.Issue(t, "root", muxtest.CertOptions{}), mux.LinkConfig{Peer: "gwp-a", Listen: "127.0.0.1:0"}))
	proxy := startCutter(t, root.LinkAddr("gwp-a").String())
	swap := muxtest.NewSwap(ca.Issue(t, "gwp-a", muxtest.CertOptions{}))
	leaf, llog := startLogged(t, leafCfg("gwp-a", swap, mux.LinkConfig{Peer: "root", Dial: proxy.ln.Addr().String()}))
	waitUp(t, leaf, root)

	// A certificate the root does not trust: the link that is up stays up.
	untrusted := muxtest.NewCA(t).Issue(t, "gwp-a", muxtest.CertOptions{})
	swap.Set(&mux.StaticCredentials{Cert: untrusted.Cert, Roots: ca.Pool})
	echoThrough(t, leaf, "root")
	if n := rlog.count("link up"); n != 1 {
		t.Fatalf("%d links up at the root, want 1", n)
	}
	// The next handshake uses it, and is refused.
	proxy.cut()
	rlog.wait(t, "link connection refused", "unknown authority")
	// The refused side is told it was refused, not that the peer spoke
	// garbage.
	llog.wait(t, "refused by peer root", "it refused this node's certificate")
	// A good new certificate: the next reconnect succeeds.
	swap.Set(ca.Issue(t, "gwp-a", muxtest.CertOptions{}))
	muxtest.WaitFor(t, 10*time.Second, "the link back with the new certificate", func() bool { return rlog.count("link up") >= 2 })
	waitUp(t, leaf, root)
	echoThrough(t, leaf, "root")
}

// On a port that has both a TLS link and a plaintext link, a plaintext
// hello is taken only for the plaintext link's label: naming the TLS link's
// label without a certificate is refused, with the reason in the log, and
// the plaintext link still comes up.
func TestTLSMixedPortPlaintextOnlyForPlaintextLinks(t *testing.T) {
	ca := muxtest.NewCA(t)
	addr := fmt.Sprintf("127.0.0.1:%d", muxtest.FreePort(t))
	root, rlog := startLogged(t, rootCfg(ca.Issue(t, "root", muxtest.CertOptions{}),
		mux.LinkConfig{Peer: "gwp-a", Listen: addr},
		mux.LinkConfig{Peer: "gwp-plain", Listen: addr, Plaintext: true}))

	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = c.Write(helloBytes("gwp-a", 3))
	b, _ := io.ReadAll(c)
	if bytes.Contains(b, []byte("gwp-plain")) {
		t.Fatalf("the refusal names this port's plaintext link: %q", b)
	}
	rlog.wait(t, "unexpected label gwp-a on this port")
	if got := root.Links(); len(got) != 0 {
		t.Fatalf("links up after a plaintext hello for a TLS link: %v", got)
	}

	leaf := muxtest.StartNode(t, leafCfg("gwp-plain", nil, mux.LinkConfig{Peer: "root", Dial: addr, Plaintext: true}))
	waitUp(t, leaf, root)
	echoThrough(t, leaf, "root")
}
