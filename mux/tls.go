package mux

import (
	"crypto/tls"
	"crypto/x509"
)

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
