package pki

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/mux"
)

// ExpiryWarning is how long before its certificate ends a Store starts
// warning about it (WarnExpiry).
const ExpiryWarning = 14 * 24 * time.Hour

// Store holds a node's TLS material, loaded from its files, and swaps in
// new material on Reload. It is a mux.Credentials: a node asks it for the
// material at every handshake, so a reload takes effect on the next link
// that comes up while the links that are up stay up. Safe for concurrent
// use.
type Store struct {
	certFile, keyFile, caFile, label string
	cur                              atomic.Pointer[mux.TLSMaterial]
}

var _ mux.Credentials = (*Store)(nil)

// NewStore loads the files as Load does; the error joins every problem.
func NewStore(certFile, keyFile, caFile, label string) (*Store, error) {
	s := &Store{certFile: certFile, keyFile: keyFile, caFile: caFile, label: label}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// TLSMaterial returns the material in force. It must not be modified.
func (s *Store) TLSMaterial() *mux.TLSMaterial { return s.cur.Load() }

// Reload reads the files again. Material with any problem Load reports
// (unreadable, unparsable, a key of another certificate, not chained to
// the CA, out of its validity, for another label) is refused with that
// error, and the material in force stays in force.
func (s *Store) Reload() error {
	m, err := Load(s.certFile, s.keyFile, s.caFile, s.label)
	if err != nil {
		return err
	}
	s.cur.Store(m)
	return nil
}

// CertFile returns the path of the certificate file.
func (s *Store) CertFile() string { return s.certFile }

// NotAfter returns the end of the validity of the certificate in force.
func (s *Store) NotAfter() time.Time { return s.cur.Load().Cert.Leaf.NotAfter }

// WarnExpiry logs a warning on log when the certificate in force expires
// within ExpiryWarning, or an error when it has expired. Call it at start
// and daily.
func (s *Store) WarnExpiry(log *logrus.Entry) { s.warnExpiry(log, time.Now()) }

func (s *Store) warnExpiry(log *logrus.Entry, now time.Time) {
	end := s.NotAfter()
	left := end.Sub(now)
	l := log.WithFields(logrus.Fields{"cert": s.certFile, "not_after": stamp(end)})
	switch {
	case left <= 0:
		l.Error("certificate has expired: links cannot come up until it is renewed")
	case left <= ExpiryWarning:
		l.Warnf("certificate expires in %s: renew it", approx(left))
	}
}

// approx writes d in whole days (rounded), or in hours and minutes under
// two days.
func approx(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%d days", int((d+12*time.Hour)/(24*time.Hour)))
	}
	return d.Round(time.Minute).String()
}
