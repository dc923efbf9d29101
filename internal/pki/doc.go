// Package pki makes and loads the certificates that relaychain links prove
// themselves with: mutual TLS 1.3, each node's certificate naming its label
// (URI relaychain://LABEL and DNS name LABEL), chained to the deployment's
// own CA. Standard library crypto only: ECDSA P-256 keys, PEM files.
//
// Files: a CA directory holds ca.crt and ca.key (keep it off the nodes); a
// node's directory holds LABEL.crt, LABEL.key and a copy of ca.crt. Keys
// are written with mode 0600 and never overwritten unless asked to.
//
// Typical usage, making the files (what "NAME pki ca" and "NAME pki issue"
// do):
//
//	if _, err := pki.NewCA("ca", 0, false); err != nil { // 0: DefaultCADays
//		return err
//	}
//	w, err := pki.Issue("ca", "relay-dmz1", "relay-dmz1", 0, false) // 0: DefaultNodeDays
//	if err != nil {
//		return err // pki.ErrExists when relay-dmz1/relay-dmz1.key is there already
//	}
//	fmt.Println(w.CertFile, pki.FormatPin(pki.PinOf(w.Cert)))
//
// and using them in a node:
//
//	for _, p := range pki.Check(certFile, keyFile, caFile, label) {
//		ps.Check("tls."+p.Part.String(), p) // each problem names its file
//	}
//	store, err := pki.NewStore(certFile, keyFile, caFile, label)
//	if err != nil {
//		return err
//	}
//	cfg.TLS = store            // a mux.Credentials
//	store.WarnExpiry(log)      // at start and daily: warns 14 days ahead
//	err = store.Reload()       // on SIGHUP: a bad file is refused, the old material stays
package pki
