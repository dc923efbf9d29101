package daemon

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relaychain/relaychain/internal/pki"
	"github.com/relaychain/relaychain/mux"
)

// TestCLIPKI makes a CA and two nodes with the pki command, loads them
// with pki.Load and runs a mutual TLS 1.3 handshake between the nodes.
func TestCLIPKI(t *testing.T) {
	dir := t.TempDir()
	caDir := filepath.Join(dir, "ca")
	out, errOut, err := runApp(t, nil, "pki", "ca", "--out", caDir)
	if err != nil || errOut != "" {
		t.Fatalf("pki ca: %v, stderr %q", err, errOut)
	}
	wantCA := regexp.MustCompile(`^wrote ` + regexp.QuoteMeta(filepath.Join(caDir, "ca.crt")) + `: CA certificate "relaychain CA", valid until \d{4}-\d\d-\d\d\n` +
		`wrote ` + regexp.QuoteMeta(filepath.Join(caDir, "ca.key")) + `: CA private key, mode 0600: keep it off the nodes\n$`)
	if !wantCA.MatchString(out) {
		t.Errorf("pki ca printed:\n%s", out)
	}

	nodes := map[string]*mux.TLSMaterial{}
	for _, label := range []string{"epp-main", "relay-dmz1"} {
		nodeDir := filepath.Join(dir, label)
		out, errOut, err := runApp(t, nil, "pki", "issue", "--ca", caDir, "--label", label, "--out", nodeDir, "--days", "30")
		if err != nil || errOut != "" {
			t.Fatalf("pki issue %s: %v, stderr %q", label, err, errOut)
		}
		cert, key, ca := filepath.Join(nodeDir, label+".crt"), filepath.Join(nodeDir, label+".key"), filepath.Join(nodeDir, "ca.crt")
		want := regexp.MustCompile(`^wrote ` + regexp.QuoteMeta(cert) + `: certificate of ` + label + `, valid until \d{4}-\d\d-\d\d, pin sha256:[A-Za-z0-9+/]{43}=\n` +
			`wrote ` + regexp.QuoteMeta(key) + `: private key, mode 0600\n` +
			`wrote ` + regexp.QuoteMeta(ca) + `: copy of the CA certificate\n$`)
		if !want.MatchString(out) {
			t.Errorf("pki issue %s printed:\n%s", label, out)
		}
		fi, err := os.Stat(key)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, mode %v; want 0600", key, err, fi.Mode())
		}
		m, err := pki.Load(cert, key, ca, label)
		if err != nil {
			t.Fatalf("pki.Load %s: %v", label, err)
		}
		if !strings.Contains(out, pki.FormatPin(pki.PinOf(m.Cert.Leaf))) {
			t.Errorf("the pin printed is not the certificate's")
		}
		if days := time.Until(m.Cert.Leaf.NotAfter).Hours() / 24; days < 29.9 || days > 30.1 {
			t.Errorf("%s valid for %.1f days, want --days 30", label, days)
		}
		nodes[label] = m
	}
	if fi, err := os.Stat(filepath.Join(caDir, "ca.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key: %v, mode %v; want 0600", err, fi.Mode())
	}

	// epp-main listens (TLS server), relay-dmz1 dials (TLS client).
	server, client := handshake(t, nodes["epp-main"], nodes["relay-dmz1"], "epp-main")
	for _, st := range []struct {
		side string
		cs   tls.ConnectionState
		peer string
	}{{"server", server, "relay-dmz1"}, {"client", client, "epp-main"}} {
		if st.cs.Version != tls.VersionTLS13 || !st.cs.HandshakeComplete {
			t.Errorf("%s: version %x, complete %v", st.side, st.cs.Version, st.cs.HandshakeComplete)
		}
		if len(st.cs.PeerCertificates) == 0 || !slices.Equal(pki.Labels(st.cs.PeerCertificates[0]), []string{st.peer}) {
			t.Errorf("%s: peer is not %s", st.side, st.peer)
		}
		if len(st.cs.VerifiedChains) == 0 {
			t.Errorf("%s: peer certificate not verified", st.side)
		}
	}
}

// handshake runs a mutual TLS 1.3 handshake over net.Pipe between a
// server with material s and a client with material c that expects the
// server to be serverLabel, exchanges a line each way and returns both
// connection states.
func handshake(t *testing.T, s, c *mux.TLSMaterial, serverLabel string) (server, client tls.ConnectionState) {
	t.Helper()
	sc, cc := net.Pipe()
	t.Cleanup(func() { _ = sc.Close(); _ = cc.Close() })
	_ = sc.SetDeadline(time.Now().Add(10 * time.Second))
	_ = cc.SetDeadline(time.Now().Add(10 * time.Second))
	srv := tls.Server(sc, &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{s.Cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    s.Roots,
	})
	cli := tls.Client(cc, &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{c.Cert},
		RootCAs:      c.Roots,
		ServerName:   serverLabel,
	})
	var wg sync.WaitGroup
	var serr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		if serr = srv.Handshake(); serr != nil {
			return
		}
		_, serr = io.Copy(srv, io.LimitReader(srv, 6)) // echo "hello\n"
	}()
	if err := cli.Handshake(); err != nil {
		_ = cc.Close()
		wg.Wait()
		t.Fatalf("client handshake: %v (server: %v)", err, serr)
	}
	if _, err := cli.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 6)
	if _, err := io.ReadFull(cli, got); err != nil || !bytes.Equal(got, []byte("hello\n")) {
		t.Fatalf("echo %q, %v", got, err)
	}
	wg.Wait()
	if serr != nil {
		t.Fatalf("server: %v", serr)
	}
	return srv.ConnectionState(), cli.ConnectionState()
}

func TestCLIPKIRefuses(t *testing.T) {
	dir := t.TempDir()
	caDir := filepath.Join(dir, "ca")
	if _, _, err := runApp(t, nil, "pki", "ca", "--out", caDir); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(caDir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = runApp(t, nil, "pki", "ca", "--out", caDir)
	if !errors.Is(err, pki.ErrExists) || !strings.Contains(err.Error(), "--force replaces it") {
		t.Fatalf("second pki ca: %v", err)
	}
	if now, _ := os.ReadFile(filepath.Join(caDir, "ca.key")); !bytes.Equal(now, key) {
		t.Fatal("ca.key replaced without --force")
	}
	if _, _, err := runApp(t, nil, "pki", "ca", "--out", caDir, "--force"); err != nil {
		t.Fatalf("--force: %v", err)
	}
	if now, _ := os.ReadFile(filepath.Join(caDir, "ca.key")); bytes.Equal(now, key) {
		t.Fatal("--force did not replace ca.key")
	}

	nodeDir := filepath.Join(dir, "n1")
	issue := []string{"pki", "issue", "--ca", caDir, "--label", "n1", "--out", nodeDir}
	if _, _, err := runApp(t, nil, issue...); err != nil {
		t.Fatal(err)
	}
	out, _, err := runApp(t, nil, issue...)
	if !errors.Is(err, pki.ErrExists) || !strings.Contains(err.Error(), filepath.Join(nodeDir, "n1.key")) || out != "" {
		t.Fatalf("second pki issue: %v, printed %q", err, out)
	}
	// A second node into the same directory keeps the identical ca.crt.
	out, _, err = runApp(t, nil, "pki", "issue", "--ca", caDir, "--label", "n2", "--out", nodeDir)
	if err != nil || !strings.HasSuffix(out, "kept "+filepath.Join(nodeDir, "ca.crt")+": it holds the CA certificate already\n") {
		t.Fatalf("second node: %v, printed %q", err, out)
	}

	for _, args := range [][]string{
		{"pki", "ca"},
		{"pki", "issue", "--ca", caDir, "--out", nodeDir},
		{"pki", "issue", "--label", "n3", "--out", nodeDir},
		{"pki", "issue", "--ca", caDir, "--label", "n3"},
		{"pki", "issue", "--ca", caDir, "--label", "bad label", "--out", nodeDir},
		{"pki", "issue", "--ca", filepath.Join(dir, "none"), "--label", "n3", "--out", nodeDir},
		{"pki", "ca", "--out", filepath.Join(dir, "ca2"), "--days", "-1"},
		{"pki", "ca", "--out", filepath.Join(dir, "ca3"), "extra"},
	} {
		// A missing flag prints the command's help too.
		if out, _, err := runApp(t, nil, args...); err == nil || strings.Contains(out, "wrote") {
			t.Errorf("%q: %v, printed %q; want an error", args, err, out)
		}
	}
	if _, err := os.Stat(filepath.Join(nodeDir, "n3.key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("n3.key written by a failed command: %v", err)
	}
}
