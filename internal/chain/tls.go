package chain

import (
	"cmp"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/internal/daemon"
	"github.com/relaychain/relaychain/internal/pki"
	"github.com/relaychain/relaychain/mux"
)

// TLS names a node's TLS material: PEM files, each relative to the
// configuration file's directory unless absolute. "NAME pki issue" writes
// them: LABEL.crt, LABEL.key and ca.crt.
type TLS struct {
	// Cert is this node's certificate, naming its label (URI
	// relaychain://LABEL or DNS name LABEL), with any intermediate CA
	// certificates after it. Required.
	Cert string `yaml:"cert"`
	// Key is its private key; keep it mode 0600. Required.
	Key string `yaml:"key"`
	// CA holds the CA certificates that a peer's certificate must chain
	// to. Required.
	CA string `yaml:"ca"`
}

// linkList is the links under one key of the file.
type linkList struct {
	key   string // "parents" or "children"
	links []Link // shares its elements with the Config
}

// tlsLinks returns the link lists this kind may have.
func (c *Config) tlsLinks() []linkList {
	var out []linkList
	if c.kind.Parents {
		out = append(out, linkList{"parents", c.Parents})
	}
	if c.kind.Children {
		out = append(out, linkList{"children", c.Children})
	}
	return out
}

// validateTLS checks the node's tls section and the TLS keys of its links:
// each block complete, its files readable, parsed, matching, chained to
// its CA, valid now and naming this node's label; pins well formed; no
// TLS setting on a link that goes without. TLS is the default: a link
// that is not insecure_plaintext needs the node's tls or its own.
func (c *Config) validateTLS(ps *daemon.Problems) {
	c.validateTLSBlock(ps, "tls", c.TLS)
	var need []string // links that fall back on the node's tls
	for _, ls := range c.tlsLinks() {
		for i, l := range ls.links {
			p := fmt.Sprintf("%s[%d]", ls.key, i)
			if l.InsecurePlaintext {
				if l.TLS != nil || ps.Pos.Has(p+".tls") {
					ps.Errorf(p+".tls", "a link with insecure_plaintext has no TLS: remove one of them")
				}
				if len(l.Pin) > 0 {
					ps.Errorf(p+".pin", "pins need TLS: remove them or insecure_plaintext")
				}
				continue
			}
			c.validateTLSBlock(ps, p+".tls", l.TLS)
			for j, pin := range l.Pin {
				_, err := pki.ParsePin(pin)
				ps.Check(fmt.Sprintf("%s.pin[%d]", p, j), err)
			}
			if l.TLS == nil && !ps.Pos.Has(p+".tls") {
				need = append(need, cmp.Or(l.Label, p))
			}
		}
	}
	if len(need) > 0 && c.TLS == nil && !ps.Pos.Has("tls") {
		ps.Errorf("tls", "missing: the links to %s use TLS (the default): set tls (cert, key, ca; "+
			"%s pki issue writes them), or tls on each link, or insecure_plaintext: true on a link to carry it in the clear",
			strings.Join(need, ", "), cmp.Or(c.kind.Name, "NAME"))
	}
}

// validateTLSBlock checks one tls block at key; t is nil when absent.
func (c *Config) validateTLSBlock(ps *daemon.Problems, key string, t *TLS) {
	if t == nil {
		// "tls:" with no value decodes to nil.
		if ps.Pos.Has(key) {
			ps.Errorf(key, "empty: set cert, key and ca")
		}
		return
	}
	complete := true
	for _, f := range []struct{ name, value, what string }{
		{"cert", t.Cert, "this node's certificate (PEM)"},
		{"key", t.Key, "this node's private key (PEM)"},
		{"ca", t.CA, "the CA certificates that peers' certificates chain to (PEM)"},
	} {
		if f.value == "" {
			ps.Errorf(key+"."+f.name, "missing: %s", f.what)
			complete = false
		}
	}
	// Without a valid label there is nothing to check the certificate
	// against; the label's own problem is reported. Loaded with
	// SkipTLSFiles, the files are not read at all.
	if !complete || mux.CheckLabel(c.Label) != nil || c.noTLSFiles {
		return
	}
	for _, p := range pki.Check(c.resolve(t.Cert), c.resolve(t.Key), c.resolve(t.CA), c.Label) {
		ps.Check(key+"."+p.Part.String(), p)
	}
}

// resolve returns path relative to the configuration file's directory.
func (c *Config) resolve(path string) string {
	if path == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(filepath.Dir(c.file), path)
}

// openTLS resolves the paths of the TLS blocks and loads them into the
// stores MuxConfig hands to the node. Called by Load once Validate has
// checked the files; an error here means a file changed in between.
func (c *Config) openTLS(pos *daemon.Positions) error {
	ps := &daemon.Problems{Pos: pos}
	open := func(key string, t *TLS) *pki.Store {
		if t == nil {
			return nil
		}
		t.Cert, t.Key, t.CA = c.resolve(t.Cert), c.resolve(t.Key), c.resolve(t.CA)
		s, err := pki.NewStore(t.Cert, t.Key, t.CA, c.Label)
		ps.Check(key, err)
		return s
	}
	c.tlsStore = open("tls", c.TLS)
	for _, ls := range c.tlsLinks() {
		for i := range ls.links {
			l := &ls.links[i]
			if !l.InsecurePlaintext {
				l.tlsStore = open(fmt.Sprintf("%s[%d].tls", ls.key, i), l.TLS)
			}
		}
	}
	return ps.Err()
}

// TLSStores returns the node's TLS material in force, the node's first,
// then the links' own in the order of the file; none when no link uses
// TLS. Reload them on SIGHUP (ReloadTLS) to take renewed certificates.
func (c *Config) TLSStores() []*pki.Store {
	var out []*pki.Store
	if c.tlsStore != nil {
		out = append(out, c.tlsStore)
	}
	for _, ls := range c.tlsLinks() {
		for _, l := range ls.links {
			if l.tlsStore != nil {
				out = append(out, l.tlsStore)
			}
		}
	}
	return out
}

// linkConfig is the mux configuration of the link l.
func (l Link) linkConfig(parent bool) mux.LinkConfig {
	lc := mux.LinkConfig{Peer: l.Label, Parent: parent, Dial: l.Dial, Listen: l.Listen.first(), Plaintext: l.InsecurePlaintext,
		Source: l.Source, Weight: l.Weight, AcceptNetworks: l.AcceptNetworks}
	if !parent {
		lc.AcceptLabels = l.acceptLabels()
	}
	if len(l.Listen) > 1 {
		lc.ListenAlso = l.Listen[1:]
	}
	if l.tlsStore != nil {
		lc.TLS = l.tlsStore
	}
	for _, s := range l.Pin {
		// Validate reported a pin that does not parse; the zero pin it
		// becomes matches no key, so the link fails closed.
		p, _ := pki.ParsePin(s)
		lc.Pins = append(lc.Pins, p)
	}
	return lc
}

// ReloadTLS reads the TLS files again, as on SIGHUP: a renewed certificate
// takes effect on the next link that comes up, the links that are up stay
// up. Material with a problem is refused and logged at level 1 with it,
// and the material in force stays in force.
func (c *Config) ReloadTLS(log *logrus.Entry) {
	for _, s := range c.TLSStores() {
		l := log.WithField("cert", s.CertFile())
		if err := s.Reload(); err != nil {
			l.WithError(err).Error("certificate reload failed, the one in force is kept")
			continue
		}
		l.WithField("not_after", s.NotAfter().UTC().Format(time.RFC3339)).Info("certificate reloaded")
		s.WarnExpiry(log)
	}
}

// watchExpiry warns about the certificates of the stores in force (those
// of the configuration in force, which a reload may add links to) that
// expire within pki.ExpiryWarning, at once and then every interval, until
// ctx ends.
func watchExpiry(ctx context.Context, stores func() []*pki.Store, log *logrus.Entry, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		for _, s := range stores() {
			s.WarnExpiry(log)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
