package chain

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/relaychain/relaychain/internal/daemon"
	"github.com/relaychain/relaychain/internal/pki"
	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// testPKI makes, in dir, a CA (ca/) and with it the files of the nodes
// labels in certs/ (LABEL.crt, LABEL.key, ca.crt); a second CA (ca2/) and
// with it r1's files in foreign/; an expired certificate for r1,
// certs/expired.crt and .key; and a file that is no PEM, certs/garbage.
func testPKI(t *testing.T, dir string, labels ...string) {
	t.Helper()
	if _, err := pki.NewCA(filepath.Join(dir, "ca"), 0, false); err != nil {
		t.Fatal(err)
	}
	for _, l := range labels {
		if _, err := pki.Issue(filepath.Join(dir, "ca"), l, filepath.Join(dir, "certs"), 0, false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pki.NewCA(filepath.Join(dir, "ca2"), 0, false); err != nil {
		t.Fatal(err)
	}
	if _, err := pki.Issue(filepath.Join(dir, "ca2"), "r1", filepath.Join(dir, "foreign"), 0, false); err != nil {
		t.Fatal(err)
	}
	signExpired(t, filepath.Join(dir, "ca"), "r1", filepath.Join(dir, "certs", "expired"))
	if err := os.WriteFile(filepath.Join(dir, "certs", "garbage"), []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// signExpired writes base.crt and base.key: a certificate for label from
// the CA in caDir whose validity ended an hour ago.
func signExpired(t *testing.T, caDir, label, base string) {
	t.Helper()
	block := func(path string) []byte {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			t.Fatalf("%s: no PEM", path)
		}
		return blk.Bytes
	}
	ca, err := x509.ParseCertificate(block(filepath.Join(caDir, "ca.crt")))
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := x509.ParsePKCS8PrivateKey(block(filepath.Join(caDir, "ca.key")))
	if err != nil {
		t.Fatal(err)
	}
	// The node reuses the CA's key: only the dates matter here.
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: label},
		NotBefore:    now.Add(-48 * time.Hour),
		NotAfter:     now.Add(-time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{label},
		URIs:         []*url.URL{{Scheme: mux.LabelURIScheme, Host: label}},
	}
	signer := caKey.(crypto.Signer)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, signer.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(base+".crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(base+".key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: block(filepath.Join(caDir, "ca.key"))}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeIn writes content to dir/name and returns its path.
func writeIn(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// pinOf returns the pin of the certificate in path.
func pinOf(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return pki.FormatPin(pki.PinOf(c))
}

func TestLoadTLS(t *testing.T) {
	dir := t.TempDir()
	testPKI(t, dir, "r1", "epp")
	abs := filepath.Join(dir, "certs")
	// r1's link to gwp-a has its own material, of another CA.
	if _, err := pki.Issue(filepath.Join(dir, "ca2"), "r1", filepath.Join(dir, "site-a"), 0, false); err != nil {
		t.Fatal(err)
	}
	eppPin := pinOf(t, filepath.Join(abs, "epp.crt"))
	path := writeIn(t, dir, "relay.yaml", `label: r1
tls:
  cert: certs/r1.crt
  key: `+filepath.Join(abs, "r1.key")+`
  ca: ./certs/ca.crt
parents:
  - label: epp
    dial: epp-host:7101
    pin: [`+eppPin+`]
children:
  - label: gwp-a
    listen: 127.0.0.1:7103
    tls:
      cert: site-a/r1.crt
      key: site-a/r1.key
      ca: site-a/ca.crt
  - label: gwp-b
    listen: 127.0.0.1:7103
    insecure_plaintext: true
`)
	cfg, err := Load(Relay, path)
	if err != nil {
		t.Fatal(err)
	}
	want := TLS{Cert: filepath.Join(abs, "r1.crt"), Key: filepath.Join(abs, "r1.key"), CA: filepath.Join(abs, "ca.crt")}
	if *cfg.TLS != want {
		t.Errorf("tls %+v, want %+v", *cfg.TLS, want)
	}
	site := filepath.Join(dir, "site-a")
	if want := (TLS{Cert: filepath.Join(site, "r1.crt"), Key: filepath.Join(site, "r1.key"), CA: filepath.Join(site, "ca.crt")}); *cfg.Children[0].TLS != want {
		t.Errorf("children[0].tls %+v, want %+v", *cfg.Children[0].TLS, want)
	}
	stores := cfg.TLSStores()
	if len(stores) != 2 || stores[0].CertFile() != want.Cert || stores[1].CertFile() != filepath.Join(site, "r1.crt") {
		t.Fatalf("stores %v", stores)
	}

	mc := cfg.MuxConfig(nil)
	if errs := mc.Validate(); len(errs) > 0 {
		t.Fatalf("mux rejects it: %v", errors.Join(errs...))
	}
	if mc.TLS != stores[0] {
		t.Fatal("the node's TLS is not its store")
	}
	if m := mc.TLS.TLSMaterial(); !slices.Equal(pki.Labels(m.Cert.Leaf), []string{"r1"}) {
		t.Errorf("node certificate names %v", pki.Labels(m.Cert.Leaf))
	}
	p, err := pki.ParsePin(eppPin)
	if err != nil {
		t.Fatal(err)
	}
	epp, gwpA, gwpB := mc.Links[0], mc.Links[1], mc.Links[2]
	if epp.TLS != nil || epp.Plaintext || !slices.Equal(epp.Pins, [][32]byte{p}) || !epp.Parent {
		t.Errorf("link to epp: %+v", epp)
	}
	if gwpA.TLS != stores[1] || gwpA.Plaintext || gwpA.Pins != nil {
		t.Errorf("link to gwp-a: %+v", gwpA)
	}
	if gwpB.TLS != nil || !gwpB.Plaintext || gwpB.Pins != nil {
		t.Errorf("link to gwp-b: %+v", gwpB)
	}
	// Validated again (paths now absolute), it still holds.
	if err := cfg.Validate(nil); err != nil {
		t.Errorf("validated again: %v", err)
	}
}

func TestLoadPlaintextWithoutTLS(t *testing.T) {
	path := writeConfig(t, "relay.yaml", `label: r1
parents:
  - label: epp
    dial: epp-host:7101
    insecure_plaintext: true
`)
	cfg, err := Load(Relay, path)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.TLSStores()) != 0 {
		t.Errorf("stores %v", cfg.TLSStores())
	}
	mc := cfg.MuxConfig(nil)
	if mc.TLS != nil || !mc.Links[0].Plaintext || mc.Links[0].TLS != nil {
		t.Errorf("mux config %+v", mc)
	}
}

// TestLoadTLSRejects checks each TLS problem against its file, line and key.
func TestLoadTLSRejects(t *testing.T) {
	dir := t.TempDir()
	testPKI(t, dir, "r1", "r2")
	const link = "label: r1\nparents:\n  - label: epp\n    dial: h:1\n"
	block := func(cert, key, ca string) string {
		return "tls:\n  cert: certs/" + cert + "\n  key: certs/" + key + "\n  ca: " + ca + "\n"
	}
	good := block("r1.crt", "r1.key", "certs/ca.crt")
	pin := pinOf(t, filepath.Join(dir, "certs", "r2.crt"))
	for _, tc := range []struct {
		name string
		yaml string
		want []problem
	}{
		{"no tls", link,
			[]problem{{1, "tls", "missing: the links to epp use TLS (the default): set tls (cert, key, ca; relay pki issue writes them), or tls on each link, or insecure_plaintext: true on a link"}}},
		{"no tls for two links of three", link + "    insecure_plaintext: true\nchildren:\n  - label: g1\n    listen: :7000\n  - label: g2\n    listen: :7000\n",
			[]problem{{1, "tls", "missing: the links to g1, g2 use TLS"}}},
		{"no tls after a comment", "# r1\n" + link + "    pin: [" + pin + "]\n",
			[]problem{{2, "tls", "missing: the links to epp use TLS"}}},
		{"certificate missing", link + block("none.crt", "r1.key", "certs/ca.crt"),
			[]problem{{6, "tls.cert", filepath.Join(dir, "certs", "none.crt") + ": cannot read: no such file or directory"}}},
		{"key does not parse", link + block("r1.crt", "garbage", "certs/ca.crt"),
			[]problem{{7, "tls.key", "garbage: does not parse: no PRIVATE KEY PEM block"}}},
		{"CA bundle does not parse", link + block("r1.crt", "r1.key", "certs/garbage"),
			[]problem{{8, "tls.ca", "does not parse"}}},
		{"key of another node", link + block("r1.crt", "r2.key", "certs/ca.crt"),
			[]problem{{7, "tls.key", "key does not match the certificate in " + filepath.Join(dir, "certs", "r1.crt")}}},
		{"certificate of another CA", link + block("../foreign/r1.crt", "../foreign/r1.key", "certs/ca.crt"),
			[]problem{{6, "tls.cert", "certificate does not chain to the CA in " + filepath.Join(dir, "certs", "ca.crt")}}},
		{"expired certificate", link + block("expired.crt", "expired.key", "certs/ca.crt"),
			[]problem{{6, "tls.cert", "certificate has expired: valid until"}}},
		{"certificate of another label", link + block("r2.crt", "r2.key", "certs/ca.crt"),
			[]problem{{6, "tls.cert", `certificate does not name the label "r1": it names r2`}}},
		{"node certificate as CA", link + block("r1.crt", "r1.key", "certs/r2.crt"),
			[]problem{{8, "tls.ca", "not a CA certificate"}}},
		{"every file wrong at once", link + block("none.crt", "garbage", "certs/none.crt"),
			[]problem{{6, "tls.cert", "cannot read"}, {7, "tls.key", "does not parse"}, {8, "tls.ca", "cannot read"}}},
		{"incomplete block", link + "tls:\n  cert: certs/r1.crt\n",
			[]problem{{5, "tls.key", "missing: this node's private key"}, {5, "tls.ca", "missing: the CA certificates"}}},
		{"empty block", link + "tls:\n",
			[]problem{{5, "tls", "empty: set cert, key and ca"}}},
		{"unknown key in the block", link + good + "  certs: x\n",
			[]problem{{9, "tls.certs", "unknown key"}}},
		{"bad label: files not checked", "label: r 1\nparents:\n  - label: epp\n    dial: h:1\n" + block("none.crt", "r1.key", "certs/ca.crt"),
			[]problem{{1, "label", "not allowed"}}},
		{"link block", link + "    tls:\n      cert: certs/r2.crt\n      key: certs/r1.key\n      ca: certs/ca.crt\n",
			[]problem{{7, "parents[0].tls.key", "does not match"}, {6, "parents[0].tls.cert", `does not name the label "r1"`}}},
		{"empty link block", link + "    tls:\n" + good,
			[]problem{{5, "parents[0].tls", "empty"}}},
		{"incomplete link block", link + "    tls:\n      ca: certs/ca.crt\n" + good,
			[]problem{{5, "parents[0].tls.cert", "missing"}, {5, "parents[0].tls.key", "missing"}}},
		{"bad pins", link + "    pin:\n      - " + pin + "\n      - sha1:abc\n      - sha256:abc\n" + good,
			[]problem{{7, "parents[0].pin[1]", `bad pin "sha1:abc"`}, {8, "parents[0].pin[2]", "bad pin"}}},
		{"plaintext with tls and pin", link + "    insecure_plaintext: true\n    pin: [" + pin + "]\n    tls:\n      cert: certs/r1.crt\n",
			[]problem{{7, "parents[0].tls", "a link with insecure_plaintext has no TLS"}, {6, "parents[0].pin", "pins need TLS"}}},
		{"plaintext with an empty tls", link + "    insecure_plaintext: true\n    tls:\n",
			[]problem{{6, "parents[0].tls", "a link with insecure_plaintext has no TLS"}}},
		{"children's link block", "label: r1\nparents:\n  - label: epp\n    dial: h:1\n    insecure_plaintext: true\nchildren:\n  - label: g\n    listen: :7000\n    tls:\n      cert: certs/expired.crt\n      key: certs/expired.key\n      ca: certs/ca.crt\n",
			[]problem{{10, "children[0].tls.cert", "expired"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeIn(t, dir, "relay.yaml", tc.yaml)
			cfg, err := Load(Relay, path)
			if cfg != nil {
				t.Errorf("Load returned a configuration along with %v", err)
			}
			checkProblems(t, path, err, tc.want)
		})
	}
}

// tlsRelay writes, in a fresh directory, the files of r1 valid for days
// days and a relay configuration that uses them, and loads it.
func tlsRelay(t *testing.T, days int) (cfg *Config, dir string) {
	t.Helper()
	dir = t.TempDir()
	if _, err := pki.NewCA(filepath.Join(dir, "ca"), 0, false); err != nil {
		t.Fatal(err)
	}
	if _, err := pki.Issue(filepath.Join(dir, "ca"), "r1", dir, days, false); err != nil {
		t.Fatal(err)
	}
	path := writeIn(t, dir, "relay.yaml", fmt.Sprintf(`label: r1
tls:
  cert: r1.crt
  key: r1.key
  ca: ca.crt
parents:
  - label: epp
    listen: %s
shutdown_grace: 0s
`, freeAddr(t)))
	cfg, err := Load(Relay, path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, dir
}

// textLog returns an entry that writes the daemons' text layout to a
// buffer, at every level.
func textLog(component string) (*logrus.Entry, *lockedBuffer) {
	buf := &lockedBuffer{}
	logger := &logrus.Logger{Out: buf, Formatter: daemon.TextFormatter{}, Hooks: logrus.LevelHooks{}, Level: logrus.TraceLevel}
	return daemon.Component(logger, component), buf
}

func TestReloadTLS(t *testing.T) {
	cfg, dir := tlsRelay(t, 0)
	store := cfg.TLSStores()[0]
	first := store.TLSMaterial()
	cert := filepath.Join(dir, "r1.crt")

	// A corrupt certificate: refused at level 1, the old one kept.
	good, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cert, good[:len(good)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	log, buf := textLog("tls")
	cfg.ReloadTLS(log)
	want := " 1 tls: certificate reload failed, the one in force is kept [cert=" + cert + ` error="` + cert + `: does not parse: no CERTIFICATE PEM block"]` + "\n"
	if got := buf.String(); !strings.HasSuffix(got, want) || strings.Count(got, "\n") != 1 {
		t.Errorf("log %q, want one line ending %q", got, want)
	}
	if cfg.MuxConfig(nil).TLS.TLSMaterial() != first {
		t.Fatal("the node's material changed on a failed reload")
	}

	// A renewed certificate, valid 10 days: taken at level 3, and warned about.
	if _, err := pki.Issue(filepath.Join(dir, "ca"), "r1", dir, 10, true); err != nil {
		t.Fatal(err)
	}
	log, buf = textLog("tls")
	cfg.ReloadTLS(log)
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	notAfter := store.NotAfter().UTC().Format(time.RFC3339)
	if len(lines) != 2 ||
		!strings.HasSuffix(lines[0], " 3 tls: certificate reloaded [cert="+cert+" not_after="+notAfter+"]") ||
		!strings.HasSuffix(lines[1], " 2 tls: certificate expires in 10 days: renew it [cert="+cert+" not_after="+notAfter+"]") {
		t.Errorf("log:\n%s", buf)
	}
	m := cfg.MuxConfig(nil).TLS.TLSMaterial()
	if m == first || !m.Cert.Leaf.NotAfter.Equal(store.NotAfter()) || time.Until(store.NotAfter()) > 11*24*time.Hour {
		t.Fatal("the renewed certificate is not in force")
	}
}

func TestWatchExpiry(t *testing.T) {
	cfg, _ := tlsRelay(t, 3)
	logger, hook := test.NewNullLogger()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	// The stores in force: none at first, then those a reload brought.
	var inForce atomic.Pointer[[]*pki.Store]
	inForce.Store(&[]*pki.Store{})
	ticks := atomic.Int32{}
	go func() {
		defer close(done)
		watchExpiry(ctx, func() []*pki.Store { ticks.Add(1); return *inForce.Load() }, logrus.NewEntry(logger), time.Millisecond)
	}()
	muxtest.WaitFor(t, 10*time.Second, "three rounds", func() bool { return ticks.Load() >= 3 })
	if n := len(hook.AllEntries()); n != 0 {
		t.Fatalf("%d warnings with no certificate in force", n)
	}
	stores := cfg.TLSStores()
	inForce.Store(&stores)
	// Then on every tick.
	muxtest.WaitFor(t, 10*time.Second, "two warnings", func() bool { return len(hook.AllEntries()) >= 2 })
	cancel()
	<-done
	for _, e := range hook.AllEntries() {
		if e.Level != logrus.WarnLevel || !strings.HasPrefix(e.Message, "certificate expires in") {
			t.Errorf("%v %q", e.Level, e.Message)
		}
	}
}

// TestRunWarnsOfExpiry checks that a node whose certificate ends soon says
// so when it starts.
func TestRunWarnsOfExpiry(t *testing.T) {
	cfg, _ := tlsRelay(t, 5)
	r := startRun(t, Relay, cfg.File())
	r.getNode(t)
	muxtest.WaitFor(t, 10*time.Second, "the expiry warning", func() bool {
		return strings.Contains(r.logs.String(), "certificate expires in 5 days: renew it\n")
	})
}

// TestLinkConfigBadPinFailsClosed: a pin that does not parse (Validate
// reports it) must not drop the link's pinning.
func TestLinkConfigBadPinFailsClosed(t *testing.T) {
	lc := Link{Label: "epp", Dial: "h:1", Pin: []string{"sha256:bad"}}.linkConfig(true)
	if len(lc.Pins) != 1 || lc.Pins[0] != ([32]byte{}) {
		t.Fatalf("pins %x, want the zero pin, which matches no key", lc.Pins)
	}
}

// TestSkipTLSFiles: the TLS files are not read with SkipTLSFiles, and
// only then; the rest of the tls checks stay; Run refuses what it loaded.
func TestSkipTLSFiles(t *testing.T) {
	path := writeConfig(t, "relay.yaml", `label: r1
tls: {cert: r1.crt, key: r1.key, ca: ca.crt}
parents:
  - label: epp
    listen: 0.0.0.0:7101
`)
	_, err := Load(Relay, path)
	checkProblems(t, path, err, []problem{
		{2, "tls.cert", "r1.crt: cannot read: no such file or directory"},
		{2, "tls.key", "r1.key: cannot read: no such file or directory"},
		{2, "tls.ca", "ca.crt: cannot read: no such file or directory"},
	})
	cfg, err := LoadWith(Relay, path, LoadOptions{SkipTLSFiles: true})
	if err != nil {
		t.Fatalf("LoadWith SkipTLSFiles: %v", err)
	}
	if len(cfg.TLSStores()) != 0 {
		t.Errorf("TLS stores loaded: %v", cfg.TLSStores())
	}
	logger, _ := testLogger(t)
	if err := Run(t.Context(), cfg, logger, Hooks{}); err == nil || !strings.Contains(err.Error(), "loaded without its TLS files") {
		t.Errorf("Run = %v, want a refusal", err)
	}

	// The checks that need no file stay.
	bad := writeConfig(t, "relay.yaml", `label: r1
tls: {cert: r1.crt, ca: ca.crt}
parents:
  - label: epp
    listen: 0.0.0.0:7101
    pin: [sha256:nope]
children:
  - label: gwp
    listen: 0.0.0.0:7103
    tls:
`)
	_, err = LoadWith(Relay, bad, LoadOptions{SkipTLSFiles: true})
	checkProblems(t, bad, err, []problem{
		{2, "tls.key", "missing"},
		{6, "parents[0].pin[0]", "sha256"},
		{10, "children[0].tls", "empty: set cert, key and ca"},
	})
}
