package pki

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoad(t *testing.T) {
	caDir := newTestCA(t)
	n := issueTest(t, caDir, "relay-dmz1")
	m, err := Load(n.cert, n.key, n.ca, "relay-dmz1")
	if err != nil {
		t.Fatal(err)
	}
	leaf := readCertTest(t, n.cert)
	if m.Cert.Leaf == nil || !m.Cert.Leaf.Equal(leaf) || len(m.Cert.Certificate) != 1 || m.Cert.PrivateKey == nil {
		t.Fatalf("material %+v", m.Cert)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: m.Roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("Roots do not hold the CA: %v", err)
	}
	if errs := Check(n.cert, n.key, n.ca, "relay-dmz1"); errs != nil {
		t.Errorf("Check: %v", errs)
	}
}

// TestCheckProblems makes each problem Check reports and checks that it
// is reported alone, against the right file, with the right sentinel.
func TestCheckProblems(t *testing.T) {
	caDir := newTestCA(t)
	good := issueTest(t, caDir, "n1")
	other := issueTest(t, caDir, "n2")
	foreign := issueTest(t, newTestCA(t), "n1")
	now := time.Now()
	expired := signTest(t, caDir, templateTest(t, "n1", now.Add(-48*time.Hour), now.Add(-time.Hour)))
	early := signTest(t, caDir, templateTest(t, "n1", now.Add(time.Hour), now.Add(48*time.Hour)))
	serverOnly := templateTest(t, "n1", now.Add(-time.Hour), now.Add(time.Hour))
	serverOnly.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	noClient := signTest(t, caDir, serverOnly)
	dnsOnly := templateTest(t, "n1", now.Add(-time.Hour), now.Add(time.Hour))
	dnsOnly.URIs = nil
	noLabel := templateTest(t, "n1", now.Add(-time.Hour), now.Add(time.Hour))
	noLabel.URIs = []*url.URL{{Scheme: "https", Host: "n1"}}
	noLabel.DNSNames = nil

	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage")
	writeTest(t, garbage, []byte("not PEM at all\n"))
	badDER := filepath.Join(dir, "bad-der")
	writeTest(t, badDER, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	corruptKey := filepath.Join(dir, "corrupt.key")
	key := readTest(t, good.key)
	writeTest(t, corruptKey, []byte(strings.Replace(string(key), string(key[40:60]), strings.Repeat("A", 20), 1)))
	missing := filepath.Join(dir, "missing.crt")
	unreadable := filepath.Join(dir, "unreadable")
	if err := os.Mkdir(unreadable, 0o700); err != nil { // a directory cannot be read as a file
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name           string
		cert, key, ca  string
		label          string
		part           Part
		is             error
		msg            string
		alsoIs         error
		wantCount, idx int
	}{
		{name: "missing certificate", cert: missing, key: good.key, ca: good.ca, part: PartCert, is: ErrUnreadable, alsoIs: fs.ErrNotExist, msg: "cannot read: no such file"},
		{name: "missing key", cert: good.cert, key: missing, ca: good.ca, part: PartKey, is: ErrUnreadable, alsoIs: fs.ErrNotExist},
		{name: "missing CA", cert: good.cert, key: good.key, ca: missing, part: PartCA, is: ErrUnreadable, alsoIs: fs.ErrNotExist},
		{name: "unreadable certificate", cert: unreadable, key: good.key, ca: good.ca, part: PartCert, is: ErrUnreadable, msg: "is a directory"},
		{name: "certificate not PEM", cert: garbage, key: good.key, ca: good.ca, part: PartCert, is: ErrParse, msg: "no CERTIFICATE PEM block"},
		{name: "key given as certificate", cert: good.key, key: good.key, ca: good.ca, part: PartCert, is: ErrParse, msg: "only PRIVATE KEY"},
		{name: "certificate DER broken", cert: badDER, key: good.key, ca: good.ca, part: PartCert, is: ErrParse, msg: "certificate 1"},
		{name: "key not PEM", cert: good.cert, key: garbage, ca: good.ca, part: PartKey, is: ErrParse, msg: "no PRIVATE KEY PEM block"},
		{name: "corrupt key", cert: good.cert, key: corruptKey, ca: good.ca, part: PartKey, is: ErrParse},
		{name: "CA not PEM", cert: good.cert, key: good.key, ca: garbage, part: PartCA, is: ErrParse},
		{name: "key of another node", cert: good.cert, key: other.key, ca: good.ca, part: PartKey, is: ErrKeyMismatch, msg: "in " + good.cert},
		{name: "certificate of another CA", cert: foreign.cert, key: foreign.key, ca: good.ca, part: PartCert, is: ErrUntrusted, msg: `issued by "CN=relaychain CA"`},
		{name: "node certificate as CA", cert: good.cert, key: good.key, ca: good.cert, part: PartCA, is: ErrNotCA},
		{name: "expired", cert: expired.cert, key: expired.key, ca: expired.ca, part: PartCert, is: ErrExpired, msg: "valid until"},
		{name: "not yet valid", cert: early.cert, key: early.key, ca: early.ca, part: PartCert, is: ErrNotYetValid, msg: "valid from"},
		{name: "server authentication only", cert: noClient.cert, key: noClient.key, ca: noClient.ca, part: PartCert, is: ErrUsage, msg: "TLS client authentication"},
		{name: "another label", cert: other.cert, key: other.key, ca: other.ca, part: PartCert, is: ErrWrongLabel, msg: `"n1": it names n2`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			label := tc.label
			if label == "" {
				label = "n1"
			}
			errs := Check(tc.cert, tc.key, tc.ca, label)
			if len(errs) != 1 {
				t.Fatalf("%d problems, want 1: %v", len(errs), joinFileErrors(errs))
			}
			e := errs[0]
			path := map[Part]string{PartCert: tc.cert, PartKey: tc.key, PartCA: tc.ca}[tc.part]
			if e.Part != tc.part || e.Path != path {
				t.Errorf("problem of %s %s, want %s %s: %v", e.Part, e.Path, tc.part, path, e)
			}
			if !errors.Is(e, tc.is) || (tc.alsoIs != nil && !errors.Is(e, tc.alsoIs)) {
				t.Errorf("%v: not %v (and %v)", e, tc.is, tc.alsoIs)
			}
			if !strings.HasPrefix(e.Error(), path+": ") || !strings.Contains(e.Error(), tc.msg) {
				t.Errorf("message %q, want %q and ...%s...", e.Error(), path+": ", tc.msg)
			}
			m, err := Load(tc.cert, tc.key, tc.ca, label)
			var fe *FileError
			if m != nil || !errors.Is(err, tc.is) || !errors.As(err, &fe) {
				t.Errorf("Load: %v, %v", m, err)
			}
		})
	}

	// A DNS name alone names the label too; a URI of another scheme does not.
	n := signTest(t, caDir, dnsOnly)
	if errs := Check(n.cert, n.key, n.ca, "n1"); errs != nil {
		t.Errorf("DNS name only: %v", joinFileErrors(errs))
	}
	n = signTest(t, caDir, noLabel)
	errs := Check(n.cert, n.key, n.ca, "n1")
	if len(errs) != 1 || !errors.Is(errs[0], ErrWrongLabel) || !strings.Contains(errs[0].Error(), "names no label") {
		t.Errorf("no label: %v", joinFileErrors(errs))
	}

	// Every problem at once, each against its file.
	errs = Check(missing, garbage, foreign.cert, "n1")
	var parts []Part
	for _, e := range errs {
		parts = append(parts, e.Part)
	}
	if !slices.Equal(parts, []Part{PartCert, PartKey, PartCA}) {
		t.Errorf("parts %v: %v", parts, joinFileErrors(errs))
	}
	errs = Check(other.cert, good.key, good.ca, "n1")
	if len(errs) != 2 || !errors.Is(errs[0], ErrKeyMismatch) || !errors.Is(errs[1], ErrWrongLabel) {
		t.Errorf("mismatch and label: %v", joinFileErrors(errs))
	}
}

func TestLoadKeyFormats(t *testing.T) {
	caDir := newTestCA(t)
	n := issueTest(t, caDir, "n1")
	k, err := readKey(n.key)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(k.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	// SEC 1, after the EC PARAMETERS block openssl writes first.
	sec1 := filepath.Join(t.TempDir(), "sec1.key")
	writeTest(t, sec1, append(
		pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})...))
	if _, err := Load(n.cert, sec1, n.ca, "n1"); err != nil {
		t.Errorf("SEC 1 key: %v", err)
	}
	enc := filepath.Join(t.TempDir(), "enc.key")
	writeTest(t, enc, pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}))
	if _, err := Load(n.cert, enc, n.ca, "n1"); !errors.Is(err, ErrParse) || !strings.Contains(err.Error(), "encrypted") {
		t.Errorf("encrypted key: %v", err)
	}
}

func TestLabels(t *testing.T) {
	u := func(s string) *url.URL {
		v, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	c := &x509.Certificate{
		URIs: []*url.URL{
			u("relaychain://relay-dmz1"),
			u("RelayChain://Upper.Case"),
			u("relaychain://with-path/x"),
			u("relaychain://with-port:7000"),
			u("relaychain://user@with-user"),
			u("https://web"),
			u("relaychain://gwp_a"),
		},
		DNSNames: []string{"relay-dmz1", "dns-only", "*.wild", "bad name"},
	}
	want := []string{"relay-dmz1", "Upper.Case", "gwp_a", "dns-only"}
	if got := Labels(c); !slices.Equal(got, want) {
		t.Errorf("Labels = %q, want %q", got, want)
	}
	if got := Labels(&x509.Certificate{}); len(got) != 0 {
		t.Errorf("no names: %q", got)
	}
}
