package pki

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/relaychain/relaychain/mux"
)

// pinPrefix starts every pin.
const pinPrefix = "sha256:"

// PinOf returns the pin of cert: the SHA-256 of its public key, the DER
// SubjectPublicKeyInfo. It stays the same when a certificate is renewed
// with the same key.
func PinOf(cert *x509.Certificate) [32]byte { return mux.PublicKeyPin(cert) }

// FormatPin writes p as "sha256:" and standard base64.
func FormatPin(p [32]byte) string {
	return pinPrefix + base64.StdEncoding.EncodeToString(p[:])
}

// ParsePin reads "sha256:" followed by the SHA-256 in standard base64
// (padding optional) or in 64 hex digits, as openssl prints it:
//
//	openssl x509 -in LABEL.crt -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256
func ParsePin(s string) ([32]byte, error) {
	var p [32]byte
	v, ok := strings.CutPrefix(s, pinPrefix)
	if !ok {
		return p, fmt.Errorf("%w %q: want %s followed by the SHA-256 of the public key in base64 or hex", ErrBadPin, s, pinPrefix)
	}
	var (
		b   []byte
		err error
	)
	switch len(v) {
	case 64:
		b, err = hex.DecodeString(v)
	case 44:
		b, err = base64.StdEncoding.DecodeString(v)
	case 43:
		b, err = base64.RawStdEncoding.DecodeString(v)
	default:
		return p, fmt.Errorf("%w %q: %d characters after %s, want 64 hex digits or 44 base64 characters", ErrBadPin, s, len(v), pinPrefix)
	}
	if err != nil || len(b) != len(p) {
		return p, fmt.Errorf("%w %q: not a SHA-256 in base64 or hex", ErrBadPin, s)
	}
	copy(p[:], b)
	return p, nil
}
