package muxtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
)

// CA is a throwaway certificate authority for tests: it issues node
// certificates, including broken ones (expired, for another use, naming
// other labels) that a link must refuse.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	Pool *x509.CertPool
}

// NewCA makes a CA with a fresh ECDSA P-256 key.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{Cert: cert, Key: key, Pool: pool}
}

// CertOptions change an issued certificate.
type CertOptions struct {
	// Labels the certificate names (URI relaychain://LABEL); default the
	// label given to Issue.
	Labels []string
	// DNSOnly names the labels as DNS names instead of URIs.
	DNSOnly bool
	// NotBefore and NotAfter; default one hour ago and one day ahead.
	NotBefore, NotAfter time.Time
	// Usage; default server and client authentication.
	Usage []x509.ExtKeyUsage
}

// Issue returns credentials for label: a certificate from ca and ca's
// pool as the trust bundle.
func (ca *CA) Issue(t testing.TB, label string, o CertOptions) *mux.StaticCredentials {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if o.Labels == nil {
		o.Labels = []string{label}
	}
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now().Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = time.Now().Add(24 * time.Hour)
	}
	if o.Usage == nil {
		o.Usage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: label},
		NotBefore:    o.NotBefore,
		NotAfter:     o.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  o.Usage,
	}
	for _, l := range o.Labels {
		if o.DNSOnly {
			tmpl.DNSNames = append(tmpl.DNSNames, l)
		} else {
			tmpl.URIs = append(tmpl.URIs, mux.LabelURI(l))
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &mux.StaticCredentials{
		Cert:  tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		Roots: ca.Pool,
	}
}

// SwapCredentials are credentials that a test replaces, as a reload does.
type SwapCredentials struct {
	p atomic.Pointer[mux.TLSMaterial]
}

// NewSwap starts with m.
func NewSwap(m mux.Credentials) *SwapCredentials {
	s := &SwapCredentials{}
	s.Set(m)
	return s
}

// Set replaces the material.
func (s *SwapCredentials) Set(m mux.Credentials) { s.p.Store(m.TLSMaterial()) }

// TLSMaterial returns the material in force.
func (s *SwapCredentials) TLSMaterial() *mux.TLSMaterial { return s.p.Load() }

var (
	testCAOnce sync.Once
	testCA     *CA
)

// WithTLS returns cfg with TLS credentials for its label from one CA
// shared by the whole test binary, unless cfg has its own or all its
// links are Plaintext: nodes started by tests link over TLS, as in
// production.
func WithTLS(t testing.TB, cfg mux.Config) mux.Config {
	t.Helper()
	if cfg.TLS != nil {
		return cfg
	}
	for _, l := range cfg.Links {
		if !l.Plaintext && l.TLS == nil {
			testCAOnce.Do(func() { testCA = NewCA(t) })
			cfg.TLS = testCA.Issue(t, cfg.Label, CertOptions{})
			return cfg
		}
	}
	return cfg
}
