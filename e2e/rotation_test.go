package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/relaychain/relaychain/e2e/e2etest"
)

// rotationWait bounds each wait of the rotation tests for a log line or a
// link: a reload is logged at once, and a killed relay's links come back
// within reconnect_max of FastTuning once it listens again.
const rotationWait = 20 * time.Second

// TestRotation renews gwp-site-a's certificate while the chain runs, and
// then gives it a key file that does not parse:
//
//   - "gwproxy pki issue --force --days 10" and SIGHUP: the log shows
//     "tls: certificate reloaded" with the new certificate's end, and the
//     expiry warning (the certificate the chain started with is valid for
//     825 days and drew none): the daemon took the new file. The link to
//     relay-dmz2 stays up on the same TCP connection (no "link down"),
//     and sessions through site A still go through.
//   - relay-dmz2 is killed (SIGKILL) and started again, now pinning the
//     new key on its gwp-site-a link: gwp-site-a's link comes back, so it
//     presented the new certificate, and sessions go through again. The
//     old certificate, still from the deployment's CA, is refused there
//     (the pin does tell the keys apart).
//   - garbage in the key file and SIGHUP: the configuration is refused
//     whole, the log names the key file's problem and "reload failed";
//     the link stays up on the same
//     connection and sessions go through. relay-dmz2 is killed and
//     started again: the link comes back through the same pin, on the
//     certificate kept in memory.
//
// Every session moves 1MiB each way, checked by SHA-256 both ways.
func TestRotation(t *testing.T) {
	tg := startTargets(t)
	c := startChain(t, tg)
	routes := entryRoutes(c, tg)
	siteA := []entryRoute{routes[0], routes[2]} // the upcall from and the downcall to site A
	gwp := c.Proc("gwp-site-a")
	dir := c.NodeDir("gwp-site-a")
	certFile := filepath.Join(dir, "gwp-site-a.crt")
	keyFile := filepath.Join(dir, "gwp-site-a.key")
	relayAddr := c.Addr(e2etest.PortDMZ2Out)
	linkUp := `3 link: link up \[addr=` + regexp.QuoteMeta(relayAddr) + ` l=relay-dmz2 `
	reLinkDown := regexp.MustCompile(`link: link down \[addr=` + regexp.QuoteMeta(relayAddr) + ` l=relay-dmz2 `)
	expiry := `2 tls: certificate expires in \d+ days: renew it \[cert=` + regexp.QuoteMeta(certFile) + ` `

	for _, r := range siteA {
		if err := routeSession(t, r); err != nil {
			t.Fatalf("%s before the renewal: %v", r.name, err)
		}
	}
	if regexp.MustCompile(expiry).MatchString(gwp.LogSince(0)) {
		t.Fatalf("gwp-site-a warned about the expiry of the certificate it started with:\n%s", gwp.LogSince(0))
	}
	oldCert := readKeyPair(t, certFile, keyFile)

	renewed := t.Run("renewed", func(t *testing.T) {
		link := linkSocket(t, gwp, relayAddr)
		if _, errOut, code := e2etest.RunCommand(t, c.Dir, e2etest.Bin(t, "gwproxy"), "pki", "issue",
			"--ca", filepath.Join(c.Dir, "ca"), "--label", "gwp-site-a", "--out", dir, "--days", "10", "--force"); code != 0 {
			t.Fatalf("gwproxy pki issue: exit %d\n%s", code, errOut)
		}
		cert := readCert(t, certFile)
		if left := time.Until(cert.NotAfter); left > 10*24*time.Hour || left < 9*24*time.Hour {
			t.Fatalf("the renewed certificate ends %s, want in 10 days", cert.NotAfter)
		}
		notAfter := regexp.QuoteMeta(cert.NotAfter.UTC().Format(time.RFC3339))

		off := gwp.LogSize()
		gwp.Signal(t, syscall.SIGHUP)
		gwp.WaitLog(t, off, rotationWait,
			`3 tls: certificate reloaded \[cert=`+regexp.QuoteMeta(certFile)+` not_after=`+notAfter+`\]`,
			expiry+`not_after=`+notAfter+`\]`)
		for _, r := range siteA {
			if err := routeSession(t, r); err != nil {
				t.Errorf("%s after the reload: %v", r.name, err)
			}
		}
		if l := reLinkDown.FindString(gwp.LogSince(off)); l != "" {
			t.Errorf("the reload took the link down: %q\n%s", l, gwp.LogSince(off))
		}
		if now := linkSocket(t, gwp, relayAddr); now != link {
			t.Errorf("the link to relay-dmz2 is on another connection after the reload: %s, was %s", now, link)
		}
		if t.Failed() {
			t.FailNow()
		}

		// Whatever comes up next comes up with the new certificate:
		// relay-dmz2 now takes no other key for gwp-site-a.
		up := gwp.LogSize()
		restartRelay(t, c, pinLink(publicKeyPin(cert)))
		gwp.WaitLog(t, up, rotationWait, linkUp)
		for _, r := range siteA {
			e2etest.Eventually(t, rotationWait, r.name+" after relay-dmz2 came back", func() error { return routeSession(t, r) })
		}
		local, alert := refusedHandshake(t, c, relayAddr, &oldCert)
		c.Proc("relay-dmz2").WaitLog(t, 0, rotationWait,
			`1 link: link connection refused \[addr=`+regexp.QuoteMeta(local)+` error="[^"]*certificate gwp-site-a: public key sha256:[A-Za-z0-9+/]{43}= is not pinned for this link"`)
		t.Logf("the old certificate of gwp-site-a: refused by the pinning relay-dmz2 (%v)", alert)
	})
	if !renewed {
		return
	}

	t.Run("bad key file", func(t *testing.T) {
		link := linkSocket(t, gwp, relayAddr)
		if err := os.WriteFile(keyFile, []byte("not a key\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		off := gwp.LogSize()
		gwp.Signal(t, syscall.SIGHUP)
		gwp.WaitLog(t, off, rotationWait,
			`1 main: .*`+regexp.QuoteMeta(keyFile)+`: does not parse: `,
			`1 log: reload failed, level kept`)
		for _, r := range siteA {
			if err := routeSession(t, r); err != nil {
				t.Errorf("%s after the failed reload: %v", r.name, err)
			}
		}
		if l := reLinkDown.FindString(gwp.LogSince(off)); l != "" {
			t.Errorf("the failed reload took the link down: %q\n%s", l, gwp.LogSince(off))
		}
		if now := linkSocket(t, gwp, relayAddr); now != link {
			t.Errorf("the link to relay-dmz2 is on another connection after the failed reload: %s, was %s", now, link)
		}
		if t.Failed() {
			t.FailNow()
		}

		// The next link comes up with the certificate kept in memory, the
		// renewed one: relay-dmz2 still pins its key.
		up := gwp.LogSize()
		restartRelay(t, c, nil)
		gwp.WaitLog(t, up, rotationWait, linkUp)
		for _, r := range siteA {
			e2etest.Eventually(t, rotationWait, r.name+" after relay-dmz2 came back", func() error { return routeSession(t, r) })
		}
	})
}

// TestRotationRefused connects to relay-dmz2's child port, the one the
// gwproxies dial, as a scripted TLS 1.3 client while the chain runs: with
// a certificate naming gwp-site-a (URI relaychain://gwp-site-a) from
// another CA, and with no certificate. Each is refused with a TLS alert
// before any application byte, and relay-dmz2's log names the reason and
// the client's address. gwp-site-a's own link on that port stays up on
// the same connection, sessions through it go through, and relay-dmz2
// keeps no CLOSE_WAIT socket of the refused connections.
func TestRotationRefused(t *testing.T) {
	tg := startTargets(t)
	c := startChain(t, tg)
	relay := c.Proc("relay-dmz2")
	gwp := c.Proc("gwp-site-a")
	relayAddr := c.Addr(e2etest.PortDMZ2Out)
	link := linkSocket(t, gwp, relayAddr)
	foreign := foreignCert(t, "gwp-site-a")

	for _, tc := range []struct {
		name   string
		cert   *tls.Certificate
		reason string // in the error of relay-dmz2's log line
	}{
		{"another CA", &foreign, `certificate gwp-site-a: x509: certificate signed by unknown authority`},
		{"no certificate", nil, `tls: client didn't provide a certificate`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			local, alert := refusedHandshake(t, c, relayAddr, tc.cert)
			relay.WaitLog(t, 0, rotationWait,
				`1 link: link connection refused \[addr=`+regexp.QuoteMeta(local)+` error="[^"]*`+regexp.QuoteMeta(tc.reason))
			t.Logf("refused: the client saw %v", alert)
		})
	}

	if now := linkSocket(t, gwp, relayAddr); now != link {
		t.Errorf("gwp-site-a's link is on another connection after the refusals: %s, was %s", now, link)
	}
	for _, r := range entryRoutes(c, tg) {
		if err := routeSession(t, r); err != nil {
			t.Errorf("%s after the refusals: %v", r.name, err)
		}
	}
	e2etest.CheckNoCloseWait(t, 10*time.Second, relay)
}

// routeSession runs one session through r, 1MiB each way, and checks that
// it ends cleanly with every byte at both ends (SHA-256 both ways).
func routeSession(t testing.TB, r entryRoute) error {
	t.Helper()
	pl := plan{up: 1 << 20, down: 1 << 20}
	cs := startSession(t, r.entry, pl)
	select {
	case <-cs.done:
	case <-time.After(30 * time.Second):
		return fmt.Errorf("session %d: not done within 30s", cs.id)
	}
	if cs.err != nil {
		return cs.err
	}
	if cs.res.end != endClean {
		return fmt.Errorf("session %d: %v", cs.id, cs.res)
	}
	ts := r.tg.session(cs.id)
	select {
	case <-ts.done:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("session %d: the target never finished", cs.id)
	}
	return checkClean(cs.res, ts.res, pl)
}

// linkSocket is the one established TCP connection of p to addr.
func linkSocket(t testing.TB, p *e2etest.Process, addr string) e2etest.Socket {
	t.Helper()
	fds, err := e2etest.OpenFDs(p.Pid())
	if err != nil {
		t.Fatalf("%s: %v", p.Name, err)
	}
	var found []e2etest.Socket
	for _, s := range fds.Sockets {
		if s.State == e2etest.StateEstablished && s.Remote == addr {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s: %d established connections to %s, want 1\n%s", p.Name, len(found), addr, fds)
	}
	return found[0]
}

// restartRelay kills relay-dmz2 with SIGKILL and starts it again, after
// edit (when not nil) changed its configuration.
func restartRelay(t testing.TB, c *e2etest.Chain, edit func(t testing.TB, text string) string) {
	t.Helper()
	p := c.Proc("relay-dmz2")
	p.Kill(t)
	if edit != nil {
		b, err := os.ReadFile(p.Conf)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p.Conf, []byte(edit(t, string(b))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c.Start("relay-dmz2")
}

var reChildA = regexp.MustCompile(`(?m)^  - label: gwp-site-a\n    listen: .*\n`)

// pinLink is an edit for restartRelay: relay-dmz2's link to gwp-site-a
// takes only the key of pin.
func pinLink(pin string) func(testing.TB, string) string {
	return func(t testing.TB, text string) string {
		t.Helper()
		loc := reChildA.FindStringIndex(text)
		if loc == nil {
			t.Fatalf("no gwp-site-a link in relay-dmz2's configuration:\n%s", text)
		}
		return text[:loc[1]] + "    pin: [" + pin + "]\n" + text[loc[1]:]
	}
}

// publicKeyPin is the pin of the certificate's key, as a link's pin list
// takes it: sha256: and the SHA-256 of its SubjectPublicKeyInfo in base64.
func publicKeyPin(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return "sha256:" + base64.StdEncoding.EncodeToString(sum[:])
}

// readCert parses the first certificate of a PEM file.
func readCert(t testing.TB, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		t.Fatalf("%s: no CERTIFICATE PEM block", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

// readKeyPair loads a certificate and its key, for a scripted client.
func readKeyPair(t testing.TB, certFile, keyFile string) tls.Certificate {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// foreignCert makes a CA of its own and, with it, a certificate naming
// label as the chain's certificates do (URI relaychain://LABEL, DNS name
// LABEL, TLS client and server): right in all but its issuer.
func foreignCert(t testing.TB, label string) tls.Certificate {
	t.Helper()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "another CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: label},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		URIs:         []*url.URL{{Scheme: "relaychain", Host: label}},
		DNSNames:     []string{label},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// refusedHandshake connects to the link port at addr as a TLS 1.3 client
// that presents cert (nothing when nil) and checks that it is refused: the
// server proves to be relay-dmz2 (by the chain's CA), and then ends the
// connection with a TLS alert before any application byte. In TLS 1.3 the
// client's handshake is over before the server has checked the client's
// certificate: the refusal arrives on the first read. It returns the
// client's address, the one the refusing node logs, and the alert.
func refusedHandshake(t testing.TB, c *e2etest.Chain, addr string, cert *tls.Certificate) (local string, alert error) {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(readCert(t, filepath.Join(c.Dir, "ca", "ca.crt")))
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(rotationWait))
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, ServerName: "relay-dmz2", RootCAs: roots}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn := tls.Client(raw, cfg)
	err = conn.Handshake()
	var n int64
	if err == nil {
		n, err = io.Copy(io.Discard, conn)
	}
	var op *net.OpError
	if n != 0 || err == nil || !errors.As(err, &op) || op.Op != "remote error" {
		t.Fatalf("connection to %s: read %d application bytes, then %v; want none and a TLS alert", addr, n, err)
	}
	return raw.LocalAddr().String(), err
}
