package mux

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// This file is PROTOCOL.md section 1.1: TLS on a link connection, and the
// binding of a peer's certificate to its label.

// TLSMaterial is what a node proves itself with and what it trusts: its
// certificate chain and key, and the trust bundle (CA certificates) that
// a peer's certificate must chain to.
type TLSMaterial struct {
	Cert  tls.Certificate
	Roots *x509.CertPool
}

// Credentials gives the TLS material in force now. A node asks for it at
// every handshake, so a reload (certificate rotation) takes effect on the
// next link that comes up while links that are up stay up.
type Credentials interface {
	TLSMaterial() *TLSMaterial
}

// StaticCredentials is TLS material that never changes.
type StaticCredentials TLSMaterial

// TLSMaterial returns m.
func (m *StaticCredentials) TLSMaterial() *TLSMaterial { return (*TLSMaterial)(m) }

// LabelURIScheme is the URI scheme of a label in a certificate's subject
// alternative names: relaychain://LABEL. A DNS name equal to the label
// names it too.
const LabelURIScheme = "relaychain"

// tlsRecordType is the first byte of a TLS handshake record: a listener
// tells TLS from a plaintext hello ("RLYC") by it.
const tlsRecordType = 0x16

// CertLabels returns the labels a certificate names: the hosts of its
// relaychain:// URIs and its DNS names that are valid labels, in order,
// without duplicates.
func CertLabels(c *x509.Certificate) []string {
	var out []string
	seen := map[string]bool{}
	add := func(l string) {
		if CheckLabel(l) == nil && !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	for _, u := range c.URIs {
		if u.Scheme == LabelURIScheme && u.Opaque == "" && u.User == nil &&
			u.Path == "" && u.RawQuery == "" && u.Fragment == "" {
			add(u.Host)
		}
	}
	for _, d := range c.DNSNames {
		add(d)
	}
	return out
}

// LabelURI is the URI subject alternative name that names label.
func LabelURI(label string) *url.URL { return &url.URL{Scheme: LabelURIScheme, Host: label} }

// PublicKeyPin is the SHA-256 of a certificate's public key (its DER
// SubjectPublicKeyInfo), what a link's Pins hold.
func PublicKeyPin(c *x509.Certificate) [32]byte { return sha256.Sum256(c.RawSubjectPublicKeyInfo) }

// verifyPeerCert checks the certificate chain a peer presented: it chains
// to roots (or, when pins are set, its public key is pinned), is valid at
// now, and is meant for usage. It does not check the label.
func verifyPeerCert(chain []*x509.Certificate, roots *x509.CertPool, pins [][32]byte, usage x509.ExtKeyUsage, now time.Time) error {
	if len(chain) == 0 {
		return errors.New("no certificate")
	}
	leaf := chain[0]
	if len(pins) > 0 {
		pin := PublicKeyPin(leaf)
		found := false
		for _, p := range pins {
			found = found || p == pin
		}
		if !found {
			return fmt.Errorf("public key sha256:%s is not pinned for this link", base64.StdEncoding.EncodeToString(pin[:]))
		}
		if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
			return fmt.Errorf("certificate is expired or not yet valid (valid %s to %s)", leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
		}
		return nil
	}
	if roots == nil {
		return errors.New("no trust bundle to verify the certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

// certSummary names a peer's certificate for a log line: its labels, or
// its subject when it names none.
func certSummary(chain []*x509.Certificate) string {
	if len(chain) == 0 {
		return "(none)"
	}
	if ls := CertLabels(chain[0]); len(ls) > 0 {
		return strings.Join(ls, ",")
	}
	return chain[0].Subject.String()
}

// credsFor is the TLS material for the link lc.
func (n *Node) credsFor(lc LinkConfig) Credentials {
	if lc.TLS != nil {
		return lc.TLS
	}
	return n.cfg.TLS
}

// tlsBase is the part of every link's TLS configuration that does not
// depend on the link: TLS 1.3 only, full-size records, no resumption (a
// peer proves its certificate at every connection).
func tlsBase() *tls.Config {
	return &tls.Config{
		MinVersion:                  tls.VersionTLS13,
		SessionTicketsDisabled:      true,
		DynamicRecordSizingDisabled: true,
	}
}

// dialTLS runs the client side of a link's TLS handshake on conn and checks
// that the server's certificate names lc.Peer. The caller has set the
// hello deadline.
func (n *Node) dialTLS(lc LinkConfig, conn net.Conn) (net.Conn, error) {
	creds := n.credsFor(lc)
	m := creds.TLSMaterial()
	cfg := tlsBase()
	cfg.ServerName = lc.Peer
	cfg.InsecureSkipVerify = true // verified below, against the link's label
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &m.Cert, nil
	}
	var why error
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		why = n.checkPeerCert(lc, cs.PeerCertificates, m.Roots, x509.ExtKeyUsageServerAuth)
		return why
	}
	tc := tls.Client(newRecordBatchConn(conn), cfg)
	if err := tc.Handshake(); err != nil {
		if why != nil {
			return nil, fmt.Errorf("%w: %s refused: %v", ErrRejected, lc.Peer, why)
		}
		return nil, fmt.Errorf("%w: TLS handshake with %s: %v", ErrRefusedByPeer, lc.Peer, err)
	}
	return tc, nil
}

// checkPeerCert checks a peer's certificate for the link lc.
func (n *Node) checkPeerCert(lc LinkConfig, chain []*x509.Certificate, roots *x509.CertPool, usage x509.ExtKeyUsage) error {
	if err := verifyPeerCert(chain, roots, lc.Pins, usage, time.Now()); err != nil {
		return fmt.Errorf("certificate %s: %w", certSummary(chain), err)
	}
	for _, l := range CertLabels(chain[0]) {
		if l == lc.Peer {
			return nil
		}
	}
	return fmt.Errorf("certificate names %s, not %s", certSummary(chain), lc.Peer)
}

// peerAlert returns the TLS alert the peer sent, if err is one: in TLS
// 1.3 the dialling side's handshake ends before the listener has checked
// its certificate, so a refusal shows at the first read.
func peerAlert(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "remote error" {
		return oe.Err
	}
	return nil
}

// prefixConn is a connection whose first bytes were read already.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// acceptTLS looks at the first byte of an accepted connection. A TLS
// handshake is run when the listener has TLS links: the client must present
// a certificate that chains to the trust bundle and names one of the
// listener's TLS links, whose config is returned. A plaintext connection
// is passed on (tls false) when the listener has plaintext links. Anything
// else is refused with nothing sent: the reason goes to this node's log
// only. The caller has set the hello deadline.
func (n *Node) acceptTLS(ll *linkListener, conn net.Conn, log *logrus.Entry) (c net.Conn, lc LinkConfig, isTLS bool, err error) {
	var first [1]byte
	if _, err := io.ReadFull(conn, first[:]); err != nil {
		return nil, lc, false, fmt.Errorf("%w: nothing read: %v", ErrBadHello, err)
	}
	c = &prefixConn{Conn: conn, r: io.MultiReader(bytes.NewReader(first[:]), conn)}
	if first[0] != tlsRecordType {
		if !ll.set.Load().plain {
			return nil, lc, false, fmt.Errorf("%w: a plaintext connection on a TLS link port", ErrRejected)
		}
		return c, lc, false, nil
	}
	if !ll.set.Load().secure {
		return nil, lc, false, fmt.Errorf("%w: a TLS connection on a plaintext link port", ErrRejected)
	}
	serverCreds := ll.set.Load().creds
	m := serverCreds.TLSMaterial()
	cfg := tlsBase()
	cfg.Certificates = []tls.Certificate{m.Cert}
	cfg.ClientAuth = tls.RequireAnyClientCert // verified below, per link
	var why error
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		lc, why = n.pickTLSLink(ll, cs.PeerCertificates)
		return why
	}
	tc := tls.Server(newRecordBatchConn(c), cfg)
	if err := tc.Handshake(); err != nil {
		if why != nil {
			return nil, lc, true, why
		}
		return nil, lc, true, fmt.Errorf("%w: TLS handshake: %v", ErrRejected, err)
	}
	return tc, lc, true, nil
}

// pickTLSLink finds the TLS link of ll that a client's certificate names,
// and checks the certificate against that link's trust.
func (n *Node) pickTLSLink(ll *linkListener, chain []*x509.Certificate) (LinkConfig, error) {
	if len(chain) == 0 {
		return LinkConfig{}, fmt.Errorf("%w: no client certificate", ErrRejected)
	}
	links := ll.set.Load().links
	var match []LinkConfig
	for _, l := range CertLabels(chain[0]) {
		if lc, ok := links[l]; ok && !lc.Plaintext {
			match = append(match, lc)
		}
	}
	switch len(match) {
	case 0:
		want := make([]string, 0, len(links))
		for p, lc := range links {
			if !lc.Plaintext {
				want = append(want, p)
			}
		}
		sort.Strings(want)
		return LinkConfig{}, fmt.Errorf("%w: certificate %s names no link of this port (expected %s)", ErrRejected, certSummary(chain), joinLabels(want))
	case 1:
	default:
		return LinkConfig{}, fmt.Errorf("%w: certificate %s names several links of this port", ErrRejected, certSummary(chain))
	}
	lc := match[0]
	if err := n.checkPeerCert(lc, chain, n.credsFor(lc).TLSMaterial().Roots, x509.ExtKeyUsageClientAuth); err != nil {
		return lc, fmt.Errorf("%w: %v", ErrRejected, err)
	}
	return lc, nil
}
