package pki

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// newTestCA makes a CA in a fresh directory and returns the directory.
func newTestCA(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	if _, err := NewCA(dir, 0, false); err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	return dir
}

// node is the three files of a node's TLS material.
type node struct{ cert, key, ca string }

// issueTest issues label's certificate with the CA in caDir into a fresh
// directory.
func issueTest(t *testing.T, caDir, label string) node {
	t.Helper()
	out := filepath.Join(t.TempDir(), label)
	w, err := Issue(caDir, label, out, 0, false)
	if err != nil {
		t.Fatalf("Issue %s: %v", label, err)
	}
	return node{w.CertFile, w.KeyFile, w.CAFile}
}

// signTest writes a certificate made from tmpl by the CA in caDir, and its
// key, into a fresh directory, with a copy of the CA certificate. For the
// certificates Issue does not make: expired, for no label, ...
func signTest(t *testing.T, caDir string, tmpl *x509.Certificate) node {
	t.Helper()
	ca, err := loadAuthority(caDir)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, _, err := ca.sign(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	n := node{filepath.Join(dir, "n.crt"), filepath.Join(dir, "n.key"), filepath.Join(dir, "ca.crt")}
	writeTest(t, n.cert, certPEM)
	writeTest(t, n.key, keyPEM)
	writeTest(t, n.ca, ca.certPEM)
	return n
}

// templateTest is the node template of label, valid from notBefore to
// notAfter.
func templateTest(t *testing.T, label string, notBefore, notAfter time.Time) *x509.Certificate {
	t.Helper()
	tmpl, err := nodeTemplate(label, notBefore, notAfter)
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

func writeTest(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func readTest(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readCertTest parses the first certificate of path.
func readCertTest(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	certs, err := readCerts(path)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

// modeOf returns the permission bits of path.
func modeOf(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}
