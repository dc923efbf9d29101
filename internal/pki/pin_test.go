package pki

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func TestPins(t *testing.T) {
	caDir := newTestCA(t)
	c := readCertTest(t, issueTest(t, caDir, "n1").cert)
	p := PinOf(c)
	if p != sha256.Sum256(c.RawSubjectPublicKeyInfo) {
		t.Fatal("PinOf is not the SHA-256 of the SubjectPublicKeyInfo")
	}
	s := FormatPin(p)
	if !strings.HasPrefix(s, "sha256:") || len(s) != len("sha256:")+44 {
		t.Fatalf("FormatPin = %q", s)
	}
	b64 := base64.StdEncoding.EncodeToString(p[:])
	for _, in := range []string{
		s,
		"sha256:" + strings.TrimRight(b64, "="),
		"sha256:" + hex.EncodeToString(p[:]),
		"sha256:" + strings.ToUpper(hex.EncodeToString(p[:])),
	} {
		got, err := ParsePin(in)
		if err != nil || got != p {
			t.Errorf("ParsePin(%q) = %x, %v; want %x", in, got, err, p)
		}
	}
	for _, tc := range []struct{ in, msg string }{
		{"", "want sha256:"},
		{b64, "want sha256:"},
		{"sha1:" + b64, "want sha256:"},
		{"sha256:", "0 characters"},
		{"sha256:" + b64[:40], "40 characters"},
		{"sha256:" + strings.Repeat("g", 64), "not a SHA-256"},
		{"sha256:" + strings.Repeat("!", 44), "not a SHA-256"},
	} {
		_, err := ParsePin(tc.in)
		if !errors.Is(err, ErrBadPin) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParsePin(%q): %v, want ErrBadPin with %q", tc.in, err, tc.msg)
		}
	}
}
