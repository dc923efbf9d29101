package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/relaychain/relaychain/mux"
)

// Load reads a node's certificate (PEM, intermediates after it), private
// key (PEM: PKCS #8, SEC 1 or PKCS #1) and CA bundle (PEM), and checks them
// as Check does. The error joins every problem, each a *FileError.
func Load(certFile, keyFile, caFile, label string) (*mux.TLSMaterial, error) {
	m, errs := load(certFile, keyFile, caFile, label, time.Now())
	if len(errs) > 0 {
		return nil, joinFileErrors(errs)
	}
	return m, nil
}

// Check reports every problem of a node's TLS material, each a *FileError
// naming the file at fault, wrapping one of: ErrUnreadable (missing or
// unreadable), ErrParse, ErrKeyMismatch, ErrNotCA, ErrUntrusted (does not
// chain to the CA bundle), ErrUsage (not for both TLS server and client
// authentication), ErrExpired, ErrNotYetValid, ErrWrongLabel (names
// neither relaychain://LABEL nor the DNS name LABEL). Nil: all is well.
func Check(certFile, keyFile, caFile, label string) []*FileError {
	_, errs := load(certFile, keyFile, caFile, label, time.Now())
	return errs
}

// load is Load and Check at time now.
func load(certFile, keyFile, caFile, label string, now time.Time) (*mux.TLSMaterial, []*FileError) {
	var errs []*FileError
	fail := func(p Part, path string, err error) {
		errs = append(errs, &FileError{Part: p, Path: path, Err: err})
	}
	chain, certErr := readCerts(certFile)
	if certErr != nil {
		fail(PartCert, certFile, certErr)
	}
	key, keyErr := readKey(keyFile)
	if keyErr != nil {
		fail(PartKey, keyFile, keyErr)
	}
	cas, caErr := readCerts(caFile)
	if caErr != nil {
		fail(PartCA, caFile, caErr)
	}
	caOK := caErr == nil
	for _, ca := range cas {
		if err := checkCA(ca, now); err != nil {
			fail(PartCA, caFile, err)
			caOK = false
		}
	}
	if certErr != nil {
		return nil, errs
	}
	leaf := chain[0]
	if keyErr == nil && !keyMatches(leaf, key) {
		fail(PartKey, keyFile, fmt.Errorf("%w in %s", ErrKeyMismatch, certFile))
	}
	timeOK := true
	if err := checkValidity(leaf, now); err != nil {
		fail(PartCert, certFile, err)
		timeOK = false
	}
	roots := x509.NewCertPool()
	for _, ca := range cas {
		roots.AddCert(ca)
	}
	// Verification would only repeat a problem of the times or of the CA.
	if caOK && timeOK {
		if err := verify(chain, roots, caFile, now); err != nil {
			fail(PartCert, certFile, err)
		}
	}
	if !slices.Contains(Labels(leaf), label) {
		fail(PartCert, certFile, wrongLabel(leaf, label))
	}
	if len(errs) > 0 {
		return nil, errs
	}
	der := make([][]byte, len(chain))
	for i, c := range chain {
		der[i] = c.Raw
	}
	return &mux.TLSMaterial{
		Cert:  tls.Certificate{Certificate: der, PrivateKey: key, Leaf: leaf},
		Roots: roots,
	}, nil
}

// readFile reads path, wrapping a failure in ErrUnreadable.
func readFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	return b, nil
}

// readCerts reads every CERTIFICATE block of the PEM file path, in order;
// other blocks are skipped. At least one is required.
func readCerts(path string) ([]*x509.Certificate, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	var other []string
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			other = append(other, blk.Type)
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate %d: %v", ErrParse, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		if len(other) > 0 {
			return nil, fmt.Errorf("%w: no CERTIFICATE PEM block, only %s", ErrParse, strings.Join(other, ", "))
		}
		return nil, fmt.Errorf("%w: no CERTIFICATE PEM block", ErrParse)
	}
	return certs, nil
}

// readKey reads the first private key block of the PEM file path.
func readKey(path string) (crypto.Signer, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("%w: no PRIVATE KEY PEM block", ErrParse)
		}
		if !strings.HasSuffix(blk.Type, "PRIVATE KEY") {
			continue
		}
		if blk.Type == "ENCRYPTED PRIVATE KEY" || blk.Headers["Proc-Type"] != "" {
			return nil, fmt.Errorf("%w: the key is encrypted; give an unencrypted key (mode 0600)", ErrParse)
		}
		return parseKey(blk)
	}
}

// parseKey parses a PKCS #8, SEC 1 (EC) or PKCS #1 (RSA) private key.
func parseKey(blk *pem.Block) (crypto.Signer, error) {
	var (
		k   any
		err error
	)
	switch blk.Type {
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrParse, blk.Type, err)
	}
	switch s := k.(type) {
	case *ecdsa.PrivateKey:
		return s, nil
	case *rsa.PrivateKey:
		return s, nil
	case ed25519.PrivateKey:
		return s, nil
	}
	return nil, fmt.Errorf("%w: %s: a %T cannot sign for TLS", ErrParse, blk.Type, k)
}

// keyMatches reports whether key is the private key of cert.
func keyMatches(cert *x509.Certificate, key crypto.Signer) bool {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(cert.PublicKey)
}

// checkValidity reports a certificate outside its validity at now.
func checkValidity(c *x509.Certificate, now time.Time) error {
	switch {
	case now.Before(c.NotBefore):
		return fmt.Errorf("%w: valid from %s", ErrNotYetValid, stamp(c.NotBefore))
	case now.After(c.NotAfter):
		return fmt.Errorf("%w: valid until %s", ErrExpired, stamp(c.NotAfter))
	}
	return nil
}

// checkCA reports a certificate of the CA bundle that is no CA or out of
// its validity.
func checkCA(c *x509.Certificate, now time.Time) error {
	name := c.Subject.String()
	if !c.IsCA || !c.BasicConstraintsValid {
		return fmt.Errorf("%q is %w", name, ErrNotCA)
	}
	if err := checkValidity(c, now); err != nil {
		return fmt.Errorf("CA %q: %w", name, err)
	}
	return nil
}

// verify checks that chain[0] chains to roots (through chain[1:]) for TLS
// server and for TLS client authentication at now.
func verify(chain []*x509.Certificate, roots *x509.CertPool, caFile string, now time.Time) error {
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	leaf := chain[0]
	for _, u := range []struct {
		usage x509.ExtKeyUsage
		name  string
	}{{x509.ExtKeyUsageServerAuth, "server"}, {x509.ExtKeyUsageClientAuth, "client"}} {
		_, err := leaf.Verify(x509.VerifyOptions{
			Roots:         roots,
			Intermediates: inter,
			CurrentTime:   now,
			KeyUsages:     []x509.ExtKeyUsage{u.usage},
		})
		var ua x509.UnknownAuthorityError
		var ci x509.CertificateInvalidError
		switch {
		case err == nil:
			continue
		case errors.As(err, &ua):
			return fmt.Errorf("%w in %s: it was issued by %q", ErrUntrusted, caFile, leaf.Issuer.String())
		case errors.As(err, &ci) && ci.Reason == x509.IncompatibleUsage:
			return fmt.Errorf("%w: not valid for TLS %s authentication (extended key usage)", ErrUsage, u.name)
		default:
			return fmt.Errorf("%w in %s: %v", ErrUntrusted, caFile, err)
		}
	}
	return nil
}

// Labels returns the labels cert names, without repeats: the hosts of its
// URIs relaychain://LABEL, then its DNS names that are valid labels (see
// mux.CheckLabel). Labels are compared exactly, case included.
func Labels(cert *x509.Certificate) []string { return mux.CertLabels(cert) }

// wrongLabel describes a certificate that does not name label.
func wrongLabel(c *x509.Certificate, label string) error {
	names := Labels(c)
	if len(names) == 0 {
		return fmt.Errorf("%w %q: it names no label (want URI %s://%s or DNS name %s)", ErrWrongLabel, label, mux.LabelURIScheme, label, label)
	}
	return fmt.Errorf("%w %q: it names %s", ErrWrongLabel, label, strings.Join(names, ", "))
}

// stamp writes t for messages.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
