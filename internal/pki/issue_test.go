package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNewCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	before := time.Now()
	w, err := NewCA(dir, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if w.CertFile != filepath.Join(dir, "ca.crt") || w.KeyFile != filepath.Join(dir, "ca.key") || w.CAFile != "" {
		t.Errorf("written %+v", w)
	}
	if m := modeOf(t, w.KeyFile); m != 0o600 {
		t.Errorf("ca.key mode %o, want 600", m)
	}
	if m := modeOf(t, dir); m != 0o700 {
		t.Errorf("CA directory mode %o, want 700", m)
	}
	c := readCertTest(t, w.CertFile)
	if !bytes.Equal(c.Raw, w.Cert.Raw) {
		t.Error("Written.Cert is not the certificate in ca.crt")
	}
	if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("not a CA for node certificates only: IsCA %v, basic constraints %v, path len %d", c.IsCA, c.BasicConstraintsValid, c.MaxPathLen)
	}
	if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("key usage %v", c.KeyUsage)
	}
	if c.Subject.CommonName != "relaychain CA" || c.Issuer.String() != c.Subject.String() {
		t.Errorf("subject %q issuer %q", c.Subject, c.Issuer)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", c.PublicKey)
	}
	if days := c.NotAfter.Sub(before).Hours() / 24; days < 3649.9 || days > 3650.1 {
		t.Errorf("valid for %.1f days, want 3650", days)
	}
	if !c.NotBefore.Before(before) {
		t.Errorf("NotBefore %s is not in the past", c.NotBefore)
	}
	key, err := readKey(w.KeyFile)
	if err != nil || !keyMatches(c, key) {
		t.Errorf("ca.key is not the CA's key: %v", err)
	}

	// A second CA has another serial number.
	w2, err := NewCA(filepath.Join(t.TempDir(), "ca2"), 30, false)
	if err != nil {
		t.Fatal(err)
	}
	if w2.Cert.SerialNumber.Cmp(c.SerialNumber) == 0 || c.SerialNumber.Sign() <= 0 {
		t.Errorf("serial numbers %v and %v", c.SerialNumber, w2.Cert.SerialNumber)
	}
	if days := w2.Cert.NotAfter.Sub(before).Hours() / 24; days < 29.9 || days > 30.1 {
		t.Errorf("valid for %.1f days, want 30", days)
	}
}

func TestNewCARefusesToOverwrite(t *testing.T) {
	dir := newTestCA(t)
	keyBefore := readTest(t, filepath.Join(dir, "ca.key"))
	_, err := NewCA(dir, 0, false)
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), filepath.Join(dir, "ca.key")) {
		t.Fatalf("got %v, want ErrExists naming ca.key", err)
	}
	if !bytes.Equal(readTest(t, filepath.Join(dir, "ca.key")), keyBefore) {
		t.Fatal("ca.key changed")
	}
	// Only the certificate left: still refused.
	if err := os.Remove(filepath.Join(dir, "ca.key")); err != nil {
		t.Fatal(err)
	}
	if _, err := NewCA(dir, 0, false); !errors.Is(err, ErrExists) {
		t.Fatalf("got %v, want ErrExists for ca.crt", err)
	}
	w, err := NewCA(dir, 0, true)
	if err != nil {
		t.Fatalf("force: %v", err)
	}
	if m := modeOf(t, w.KeyFile); m != 0o600 {
		t.Errorf("replaced ca.key mode %o", m)
	}
	if _, err := NewCA(t.TempDir(), -1, false); err == nil {
		t.Error("negative days accepted")
	}
}

func TestIssue(t *testing.T) {
	caDir := newTestCA(t)
	out := filepath.Join(t.TempDir(), "node")
	before := time.Now()
	w, err := Issue(caDir, "relay-dmz1", out, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	want := Written{CertFile: filepath.Join(out, "relay-dmz1.crt"), KeyFile: filepath.Join(out, "relay-dmz1.key"), CAFile: filepath.Join(out, "ca.crt")}
	if w.CertFile != want.CertFile || w.KeyFile != want.KeyFile || w.CAFile != want.CAFile || w.CAKept {
		t.Errorf("written %+v, want %+v", w, want)
	}
	if m := modeOf(t, w.KeyFile); m != 0o600 {
		t.Errorf("key mode %o, want 600", m)
	}
	if !bytes.Equal(readTest(t, w.CAFile), readTest(t, filepath.Join(caDir, "ca.crt"))) {
		t.Error("ca.crt beside the node is not the CA certificate")
	}
	c := readCertTest(t, w.CertFile)
	ca := readCertTest(t, filepath.Join(caDir, "ca.crt"))
	if err := c.CheckSignatureFrom(ca); err != nil {
		t.Errorf("not signed by the CA: %v", err)
	}
	if len(c.URIs) != 1 || c.URIs[0].String() != "relaychain://relay-dmz1" {
		t.Errorf("URIs %v", c.URIs)
	}
	if !slices.Equal(c.DNSNames, []string{"relay-dmz1"}) || c.Subject.CommonName != "relay-dmz1" {
		t.Errorf("DNS names %v, CN %q", c.DNSNames, c.Subject.CommonName)
	}
	if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
		t.Errorf("extended key usage %v", c.ExtKeyUsage)
	}
	if c.KeyUsage != x509.KeyUsageDigitalSignature || c.IsCA {
		t.Errorf("key usage %v, CA %v", c.KeyUsage, c.IsCA)
	}
	if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", c.PublicKey)
	}
	if ago := before.Sub(c.NotBefore); ago < 30*time.Minute || ago > 2*time.Hour {
		t.Errorf("NotBefore %s before now, want a little in the past", ago)
	}
	if days := c.NotAfter.Sub(before).Hours() / 24; days < 824.9 || days > 825.1 {
		t.Errorf("valid for %.1f days, want 825", days)
	}
	if c.SerialNumber.Cmp(ca.SerialNumber) == 0 {
		t.Error("node serial equals the CA's")
	}
	if _, err := Load(w.CertFile, w.KeyFile, w.CAFile, "relay-dmz1"); err != nil {
		t.Errorf("Load: %v", err)
	}

	// A second node beside the first keeps the identical ca.crt.
	w2, err := Issue(caDir, "gwp-a", out, 10, false)
	if err != nil {
		t.Fatal(err)
	}
	if !w2.CAKept {
		t.Error("identical ca.crt not reported as kept")
	}
	if days := w2.Cert.NotAfter.Sub(before).Hours() / 24; days < 9.9 || days > 10.1 {
		t.Errorf("valid for %.1f days, want 10", days)
	}
}

func TestIssueNotBeyondTheCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	ca, err := NewCA(dir, 100, false)
	if err != nil {
		t.Fatal(err)
	}
	w, err := Issue(dir, "n1", t.TempDir(), 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if !w.Cert.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("node valid until %s, CA until %s", w.Cert.NotAfter, ca.Cert.NotAfter)
	}
}

func TestIssueRefuses(t *testing.T) {
	caDir := newTestCA(t)
	out := t.TempDir()
	w, err := Issue(caDir, "n1", out, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	key := readTest(t, w.KeyFile)
	if _, err := Issue(caDir, "n1", out, 0, false); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), w.KeyFile) {
		t.Fatalf("got %v, want ErrExists naming %s", err, w.KeyFile)
	}
	if !bytes.Equal(readTest(t, w.KeyFile), key) {
		t.Fatal("key replaced without force")
	}
	if _, err := Issue(caDir, "n1", out, 0, true); err != nil {
		t.Fatalf("force: %v", err)
	}
	if bytes.Equal(readTest(t, w.KeyFile), key) {
		t.Fatal("force did not replace the key")
	}
	if m := modeOf(t, w.KeyFile); m != 0o600 {
		t.Errorf("replaced key mode %o", m)
	}

	// A ca.crt of another CA is not replaced silently.
	other := newTestCA(t)
	if _, err := Issue(other, "n2", out, 0, false); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "another CA") {
		t.Fatalf("got %v, want ErrExists for ca.crt", err)
	}
	if _, err := os.Stat(filepath.Join(out, "n2.key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("n2.key written although Issue failed: %v", err)
	}

	for _, tc := range []struct{ label, msg string }{
		{"", "empty"},
		{"a b", "not allowed"},
		{"-a", "must start with"},
		{"a..b", "cannot be named in a certificate"},
		{"a.", "cannot be named in a certificate"},
	} {
		if _, err := Issue(caDir, tc.label, t.TempDir(), 0, false); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("label %q: got %v, want %q", tc.label, err, tc.msg)
		}
	}
	if _, err := Issue(caDir, "n3", t.TempDir(), -5, false); err == nil {
		t.Error("negative days accepted")
	}
	if _, err := Issue(t.TempDir(), "n3", t.TempDir(), 0, false); !errors.Is(err, ErrUnreadable) {
		t.Errorf("no CA: got %v, want ErrUnreadable", err)
	}
	// A CA directory whose key is another's.
	mixed := t.TempDir()
	writeTest(t, filepath.Join(mixed, "ca.crt"), readTest(t, filepath.Join(caDir, "ca.crt")))
	writeTest(t, filepath.Join(mixed, "ca.key"), readTest(t, filepath.Join(other, "ca.key")))
	if _, err := Issue(mixed, "n3", t.TempDir(), 0, false); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("mixed CA: got %v, want ErrKeyMismatch", err)
	}
}
