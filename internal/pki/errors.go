package pki

import (
	"errors"
	"strconv"
)

// The problems this package reports. Each error it returns wraps one of
// them (and a *FileError when a file is at fault); compare with errors.Is.
var (
	// ErrExists: NewCA or Issue would replace a file; pass force to do so.
	ErrExists = errors.New("already exists")
	// ErrUnreadable: a file is missing or cannot be read. The error of the
	// file system is wrapped too (errors.Is(err, fs.ErrNotExist)).
	ErrUnreadable = errors.New("cannot read")
	// ErrParse: a file holds no PEM block of the kind expected, or what it
	// holds does not parse.
	ErrParse = errors.New("does not parse")
	// ErrKeyMismatch: the key is not the certificate's.
	ErrKeyMismatch = errors.New("key does not match the certificate")
	// ErrNotCA: a certificate of the CA bundle is not a CA certificate.
	ErrNotCA = errors.New("not a CA certificate")
	// ErrUntrusted: the certificate does not chain to the CA bundle.
	ErrUntrusted = errors.New("certificate does not chain to the CA")
	// ErrUsage: the certificate is not valid for both TLS server and TLS
	// client authentication (either side of a link may be either).
	ErrUsage = errors.New("certificate is not for TLS client and server authentication")
	// ErrExpired: the certificate's validity has ended.
	ErrExpired = errors.New("certificate has expired")
	// ErrNotYetValid: the certificate's validity has not begun.
	ErrNotYetValid = errors.New("certificate is not valid yet")
	// ErrWrongLabel: the certificate does not name the node's label.
	ErrWrongLabel = errors.New("certificate does not name the label")
	// ErrBadPin: a pin is not "sha256:" and a SHA-256 in base64 or hex.
	ErrBadPin = errors.New("bad pin")
)

// Part is one of the three files of a node's TLS material.
type Part uint8

const (
	PartCert Part = iota + 1 // the node's certificate
	PartKey                  // its private key
	PartCA                   // the CA bundle
)

// String returns "cert", "key" or "ca".
func (p Part) String() string {
	switch p {
	case PartCert:
		return "cert"
	case PartKey:
		return "key"
	case PartCA:
		return "ca"
	}
	return "part(" + strconv.Itoa(int(p)) + ")"
}

// FileError is a problem with one file of a node's TLS material: Part says
// which file is at fault, so that a configuration can point at its key.
type FileError struct {
	Part Part
	Path string
	Err  error
}

// Error returns "PATH: problem".
func (e *FileError) Error() string { return e.Path + ": " + e.Err.Error() }

// Unwrap returns the problem.
func (e *FileError) Unwrap() error { return e.Err }

// joinFileErrors joins errs with errors.Join, nil when there is none.
func joinFileErrors(errs []*FileError) error {
	if len(errs) == 0 {
		return nil
	}
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return errors.Join(out...)
}
