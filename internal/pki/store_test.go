package pki

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

func TestStoreReload(t *testing.T) {
	caDir := newTestCA(t)
	n := issueTest(t, caDir, "n1")
	s, err := NewStore(n.cert, n.key, n.ca, "n1")
	if err != nil {
		t.Fatal(err)
	}
	first := s.TLSMaterial()
	if first == nil || !bytes.Equal(first.Cert.Leaf.Raw, readCertTest(t, n.cert).Raw) {
		t.Fatal("the store does not hold the certificate")
	}
	if !s.NotAfter().Equal(first.Cert.Leaf.NotAfter) || s.CertFile() != n.cert {
		t.Errorf("NotAfter %s, CertFile %s", s.NotAfter(), s.CertFile())
	}

	// A corrupt certificate is refused; the old material stays.
	good := readTest(t, n.cert)
	writeTest(t, n.cert, good[:len(good)/2])
	if err := s.Reload(); !errors.Is(err, ErrParse) || !strings.Contains(err.Error(), n.cert) {
		t.Fatalf("Reload of a corrupt certificate: %v", err)
	}
	if s.TLSMaterial() != first {
		t.Fatal("material replaced by a failed reload")
	}
	// So is a certificate of another label, with its key.
	other := issueTest(t, caDir, "n2")
	writeTest(t, n.cert, readTest(t, other.cert))
	writeTest(t, n.key, readTest(t, other.key))
	if err := s.Reload(); !errors.Is(err, ErrWrongLabel) || s.TLSMaterial() != first {
		t.Fatalf("Reload of another label's certificate: %v", err)
	}
	// And a missing key.
	if err := os.Remove(n.key); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); !errors.Is(err, ErrUnreadable) || s.TLSMaterial() != first {
		t.Fatalf("Reload with the key gone: %v", err)
	}

	// A renewed certificate is taken.
	renewed, err := Issue(caDir, "n1", t.TempDir(), 30, false)
	if err != nil {
		t.Fatal(err)
	}
	writeTest(t, n.cert, readTest(t, renewed.CertFile))
	writeTest(t, n.key, readTest(t, renewed.KeyFile))
	if err := s.Reload(); err != nil {
		t.Fatalf("Reload of a renewed certificate: %v", err)
	}
	if m := s.TLSMaterial(); m == first || !m.Cert.Leaf.Equal(renewed.Cert) || !s.NotAfter().Equal(renewed.Cert.NotAfter) {
		t.Fatal("renewed certificate not in force")
	}

	if _, err := NewStore(n.cert, n.key+".none", n.ca, "n1"); !errors.Is(err, ErrUnreadable) {
		t.Errorf("NewStore with a missing key: %v", err)
	}
}

func TestStoreWarnExpiry(t *testing.T) {
	caDir := newTestCA(t)
	n := issueTest(t, caDir, "n1")
	s, err := NewStore(n.cert, n.key, n.ca, "n1")
	if err != nil {
		t.Fatal(err)
	}
	logger, hook := test.NewNullLogger()
	log := logrus.NewEntry(logger)
	end := s.NotAfter()
	for _, tc := range []struct {
		now   time.Time
		level logrus.Level
		msg   string
	}{
		{end.Add(-15 * 24 * time.Hour), 0, ""},
		{end.Add(-14*24*time.Hour - time.Minute), 0, ""},
		{end.Add(-14 * 24 * time.Hour), logrus.WarnLevel, "certificate expires in 14 days: renew it"},
		{end.Add(-3*24*time.Hour - time.Hour), logrus.WarnLevel, "certificate expires in 3 days"},
		{end.Add(-90 * time.Minute), logrus.WarnLevel, "certificate expires in 1h30m0s"},
		{end.Add(time.Second), logrus.ErrorLevel, "certificate has expired"},
	} {
		hook.Reset()
		s.warnExpiry(log, tc.now)
		got := hook.AllEntries()
		if tc.msg == "" {
			if len(got) != 0 {
				t.Errorf("%s before the end: logged %q", end.Sub(tc.now), got[0].Message)
			}
			continue
		}
		if len(got) != 1 || got[0].Level != tc.level || !strings.HasPrefix(got[0].Message, tc.msg) {
			t.Errorf("%s before the end: %d entries %v, want one at %v: %q", end.Sub(tc.now), len(got), got, tc.level, tc.msg)
			continue
		}
		if got[0].Data["cert"] != n.cert || got[0].Data["not_after"] != stamp(end) {
			t.Errorf("fields %v", got[0].Data)
		}
	}
	// Now, with 825 days ahead: nothing.
	hook.Reset()
	s.WarnExpiry(log)
	if len(hook.AllEntries()) != 0 {
		t.Errorf("a new certificate warned about: %v", hook.LastEntry().Message)
	}
}
