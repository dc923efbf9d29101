package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/relaychain/relaychain/mux"
)

const (
	// DefaultCADays is how long a CA made by NewCA is valid when days is 0.
	DefaultCADays = 3650
	// DefaultNodeDays is how long a node certificate made by Issue is
	// valid when days is 0 (825 days: what browsers still accept, a
	// reminder to renew within a little over two years).
	DefaultNodeDays = 825
	// CACertFile and CAKeyFile are the file names of a CA directory.
	// CACertFile is also the name of the copy Issue puts beside a node's
	// certificate.
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
	// CAName is the common name of a CA made by NewCA.
	CAName = "relaychain CA"
	// backdate is how far in the past a new certificate's validity begins,
	// so that a peer whose clock is a little behind accepts it at once.
	backdate = time.Hour
)

// Written is what NewCA or Issue wrote.
type Written struct {
	// Cert is the new certificate: the CA's or the node's.
	Cert *x509.Certificate
	// CertFile and KeyFile are its files.
	CertFile, KeyFile string
	// CAFile is, for Issue, the copy of the CA certificate beside the
	// node's files; "" for NewCA.
	CAFile string
	// CAKept is set by Issue when CAFile already held the CA certificate
	// and was left as it was.
	CAKept bool
}

// CertFileOf and KeyFileOf are the file names Issue gives a node's
// certificate and key: LABEL.crt and LABEL.key.
func CertFileOf(label string) string { return label + ".crt" }
func KeyFileOf(label string) string  { return label + ".key" }

// NewCA makes a CA in dir (created with mode 0700 if missing): dir/ca.crt
// and dir/ca.key (mode 0600), an ECDSA P-256 key and a self-signed
// certificate with the common name CAName, valid for days days (0:
// DefaultCADays), that signs node certificates only (path length 0). It
// refuses to replace either file (ErrExists) unless force is set.
func NewCA(dir string, days int, force bool) (*Written, error) {
	days, err := checkDays(days, DefaultCADays)
	if err != nil {
		return nil, err
	}
	w := &Written{CertFile: filepath.Join(dir, CACertFile), KeyFile: filepath.Join(dir, CAKeyFile)}
	if !force {
		if err := refuseExisting(w.KeyFile, w.CertFile); err != nil {
			return nil, err
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: CAName},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.AddDate(0, 0, days),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	if w.Cert, err = x509.ParseCertificate(der); err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := writeFile(w.KeyFile, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeFile(w.CertFile, encodeCert(der), 0o644); err != nil {
		return nil, err
	}
	return w, nil
}

// Issue makes the key and certificate of the node label with the CA in
// caDir: outDir/LABEL.key (mode 0600), outDir/LABEL.crt, and a copy of the
// CA certificate, outDir/ca.crt, so that outDir holds all a node needs
// (outDir is created if missing). The certificate names the label as URI
// relaychain://LABEL and as DNS name LABEL, is for TLS server and client
// authentication (a link's dialling side is a TLS client, its listening
// side a TLS server, either may be parent or child) and is valid for days
// days (0: DefaultNodeDays), but not beyond the CA. It refuses to replace
// the key or certificate, or a ca.crt that holds another CA (ErrExists),
// unless force is set.
func Issue(caDir, label, outDir string, days int, force bool) (*Written, error) {
	if err := checkIssuable(label); err != nil {
		return nil, err
	}
	days, err := checkDays(days, DefaultNodeDays)
	if err != nil {
		return nil, err
	}
	ca, err := loadAuthority(caDir)
	if err != nil {
		return nil, err
	}
	w := &Written{
		CertFile: filepath.Join(outDir, CertFileOf(label)),
		KeyFile:  filepath.Join(outDir, KeyFileOf(label)),
		CAFile:   filepath.Join(outDir, CACertFile),
	}
	old, err := os.ReadFile(w.CAFile)
	switch {
	case err == nil && bytes.Equal(old, ca.certPEM):
		w.CAKept = true
	case err == nil && !force:
		return nil, fmt.Errorf("%s %w and holds another CA certificate: not overwritten", w.CAFile, ErrExists)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	if !force {
		if err := refuseExisting(w.KeyFile, w.CertFile); err != nil {
			return nil, err
		}
	}
	now := time.Now()
	notAfter := now.AddDate(0, 0, days)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	tmpl, err := nodeTemplate(label, now.Add(-backdate), notAfter)
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, cert, err := ca.sign(tmpl)
	if err != nil {
		return nil, err
	}
	w.Cert = cert
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, err
	}
	if err := writeFile(w.KeyFile, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeFile(w.CertFile, certPEM, 0o644); err != nil {
		return nil, err
	}
	if !w.CAKept {
		if err := writeFile(w.CAFile, ca.certPEM, 0o644); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// checkIssuable reports a label that cannot be named in a certificate.
func checkIssuable(label string) error {
	if err := mux.CheckLabel(label); err != nil {
		return err
	}
	// A URI's host, and so relaychain://LABEL, has no empty part.
	if strings.Contains(label, "..") || strings.HasSuffix(label, ".") {
		return fmt.Errorf("label %q cannot be named in a certificate: a part between dots is empty", label)
	}
	return nil
}

// checkDays returns days, or def when days is 0.
func checkDays(days, def int) (int, error) {
	switch {
	case days == 0:
		return def, nil
	case days < 0:
		return 0, fmt.Errorf("days %d: must be positive", days)
	}
	return days, nil
}

// nodeTemplate is the certificate of the node label.
func nodeTemplate(label string, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: label},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{label},
		URIs:                  []*url.URL{{Scheme: mux.LabelURIScheme, Host: label}},
	}, nil
}

// newSerial returns a random positive 128-bit serial number.
func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// authority is a CA loaded from its directory.
type authority struct {
	cert    *x509.Certificate
	certPEM []byte
	key     crypto.Signer
}

// loadAuthority reads dir/ca.crt and dir/ca.key.
func loadAuthority(dir string) (*authority, error) {
	certFile, keyFile := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	certs, err := readCerts(certFile)
	if err != nil {
		return nil, &FileError{Part: PartCA, Path: certFile, Err: err}
	}
	if len(certs) != 1 {
		return nil, &FileError{Part: PartCA, Path: certFile, Err: fmt.Errorf("%w: %d certificates, want the CA's alone", ErrParse, len(certs))}
	}
	cert := certs[0]
	if err := checkCA(cert, time.Now()); err != nil {
		return nil, &FileError{Part: PartCA, Path: certFile, Err: err}
	}
	key, err := readKey(keyFile)
	if err != nil {
		return nil, &FileError{Part: PartKey, Path: keyFile, Err: err}
	}
	if !keyMatches(cert, key) {
		return nil, &FileError{Part: PartKey, Path: keyFile, Err: fmt.Errorf("%w in %s", ErrKeyMismatch, certFile)}
	}
	return &authority{cert: cert, certPEM: encodeCert(cert.Raw), key: key}, nil
}

// sign makes a new P-256 key and the certificate tmpl for it, signed by a.
func (a *authority) sign(tmpl *x509.Certificate) (certPEM, keyPEM []byte, cert *x509.Certificate, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generate key: %w", err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, key.Public(), a.key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	if cert, err = x509.ParseCertificate(der); err != nil {
		return nil, nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	if keyPEM, err = encodeKey(key); err != nil {
		return nil, nil, nil, err
	}
	return encodeCert(der), keyPEM, cert, nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// encodeKey writes key as a PKCS #8 PEM block.
func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// refuseExisting returns ErrExists for the first of paths that exists.
func refuseExisting(paths ...string) error {
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s %w: not overwritten", p, ErrExists)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// writeFile writes data to path with mode perm through a temporary file in
// the same directory, so that path never holds half a file and a key is
// never readable by others, not even for a moment.
func writeFile(path string, data []byte, perm os.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp") // mode 0600
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
