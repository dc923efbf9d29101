package pki_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/relaychain/relaychain/internal/pki"
)

// A CA, a node's files, and the node's TLS material loaded from them.
func Example() {
	dir, err := os.MkdirTemp("", "pki-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	caDir, nodeDir := filepath.Join(dir, "ca"), filepath.Join(dir, "relay-dmz1")
	if _, err := pki.NewCA(caDir, 0, false); err != nil {
		fmt.Println(err)
		return
	}
	w, err := pki.Issue(caDir, "relay-dmz1", nodeDir, 0, false)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(filepath.Base(w.CertFile), filepath.Base(w.KeyFile), filepath.Base(w.CAFile))
	fmt.Println(pki.Labels(w.Cert))

	m, err := pki.Load(w.CertFile, w.KeyFile, w.CAFile, "relay-dmz1")
	if err != nil {
		fmt.Println(err)
		return
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{m.Cert}, RootCAs: m.Roots}
	fmt.Println(len(conf.Certificates))

	// A second issue into the same place is refused.
	_, err = pki.Issue(caDir, "relay-dmz1", nodeDir, 0, false)
	fmt.Println(err != nil && errors.Is(err, pki.ErrExists))
	// Output:
	// relay-dmz1.crt relay-dmz1.key ca.crt
	// [relay-dmz1]
	// 1
	// true
}
