package chain

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/relaychain/relaychain/internal/daemon"
)

// fuzzKinds are the kinds FuzzLoad picks from with its first argument.
var fuzzKinds = []Kind{EPProxy, GWProxy, Relay, EventSink}

func fuzzKindIndex(k Kind) uint8 {
	for i, fk := range fuzzKinds {
		if fk.Name == k.Name {
			return uint8(i)
		}
	}
	panic("unknown kind " + k.Name)
}

// FuzzLoad feeds arbitrary bytes to Load for each kind. Load must never
// panic, and must return either a configuration and no error or an error
// and no configuration. Every problem it reports is a *daemon.ConfigError
// naming the file. What it accepts, the mux node accepts too, and it stays
// valid when validated again.
//
// Run it for a while with
//
//	go test -run '^$' -fuzz '^FuzzLoad$' -fuzztime 30s -fuzzminimizetime 5s ./internal/chain/
//
// (Without -fuzzminimizetime, each new interesting input is minimised for
// up to a minute, during which the exec count stands still.)
func FuzzLoad(f *testing.F) {
	for _, s := range samples(f) {
		data, err := os.ReadFile(s.path)
		if err != nil {
			f.Fatal(err)
		}
		for i := range fuzzKinds {
			f.Add(uint8(i), data)
		}
	}
	for _, tc := range brokenConfigs {
		f.Add(fuzzKindIndex(tc.kind), []byte(tc.yaml))
	}
	for _, y := range []string{okRelay, okGWProxy, okEPProxy, okEventSink, rulesGWProxy} {
		for i := range fuzzKinds {
			f.Add(uint8(i), []byte(y))
		}
	}
	f.Add(uint8(2), []byte("label: &a r1\nparents:\n  - label: *a\n    dial: h:1\n    insecure_plaintext: true\n"))
	f.Add(uint8(2), []byte("a: &a [*a, *a]\n"))
	f.Add(uint8(2), []byte("label: r1\nparents: !!binary aGVsbG8=\n"))
	f.Add(uint8(2), []byte("{label: r1, parents: [{label: e, dial: 'h:1', insecure_plaintext: true}], tuning: {window_size: 1 GiB}}"))
	f.Add(uint8(3), []byte("label: es\nevents: {spool: {max_bytes: 18446744073709551615}}\n"))

	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		k := fuzzKinds[int(kind)%len(fuzzKinds)]
		path := filepath.Join(dir, k.Name+".yaml")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		// Without its TLS files read, a configuration has no problem that
		// Load does not find; loaded so, it checks as a chain of one node
		// without a panic, each problem naming its file.
		skipped, skipErr := LoadWith(k, path, LoadOptions{SkipTLSFiles: true})
		if skipErr == nil {
			s := &Set{Nodes: []*Config{skipped}}
			for _, e := range leaves(s.Check()) {
				var ce *daemon.ConfigError
				if !errors.As(e, &ce) || ce.File != path || ce.Err == nil {
					t.Fatalf("chain problem %#v (%v) is not a ConfigError naming %s", e, e, path)
				}
			}
		}
		cfg, err := Load(k, path)
		if err == nil && skipErr != nil {
			t.Fatalf("Load accepted what LoadWith(SkipTLSFiles) rejects: %v", skipErr)
		}
		if err != nil {
			if cfg != nil {
				t.Fatalf("Load returned a configuration and an error: %v", err)
			}
			for _, e := range leaves(err) {
				var ce *daemon.ConfigError
				if !errors.As(e, &ce) || ce.File != path || ce.Line < 0 || ce.Err == nil {
					t.Fatalf("problem %#v (%v) is not a ConfigError naming %s", e, e, path)
				}
			}
			return
		}
		if cfg == nil {
			t.Fatal("Load returned neither a configuration nor an error")
		}
		if cfg.Kind().Name != k.Name || cfg.Label == "" {
			t.Fatalf("loaded kind %q label %q", cfg.Kind().Name, cfg.Label)
		}
		if err := cfg.Validate(nil); err != nil {
			t.Fatalf("a loaded configuration does not validate again: %v", err)
		}
		if errs := cfg.MuxConfig(nil).Validate(); len(errs) > 0 {
			t.Fatalf("Load accepted what mux rejects: %v", errors.Join(errs...))
		}
	})
}
