package chain

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/relaychain/relaychain/internal/daemon"
	"github.com/relaychain/relaychain/internal/pki"
	"github.com/relaychain/relaychain/mux"
)

// samplesDir is the repository's configs directory, seen from this package.
const samplesDir = "../../configs"

// kinds are the daemons of this package, by configuration file name.
var kinds = map[string]Kind{
	"epproxy.yaml":   EPProxy,
	"gwproxy.yaml":   GWProxy,
	"relay.yaml":     Relay,
	"eventsink.yaml": EventSink,
}

// sample is one sample configuration under configs/.
type sample struct {
	path string
	kind Kind
}

// samples returns every sample configuration under configs/, copied into
// a temporary directory with the certificates each one names (issued by
// one CA, as "pki issue" would), failing the test for a YAML file whose
// name names no daemon (it would go unchecked) and when there is none at
// all.
func samples(t testing.TB) []sample {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "configs")
	if err := os.CopyFS(dir, os.DirFS(samplesDir)); err != nil {
		t.Fatal(err)
	}
	caDir := filepath.Join(t.TempDir(), "ca")
	if _, err := pki.NewCA(caDir, 0, false); err != nil {
		t.Fatal(err)
	}
	var out []sample
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		ext := filepath.Ext(path)
		if d.IsDir() || (ext != ".yaml" && ext != ".yml") {
			return nil
		}
		k, ok := kinds[d.Name()]
		if !ok {
			t.Errorf("%s: no daemon reads a file of this name; name it epproxy.yaml, gwproxy.yaml, relay.yaml or eventsink.yaml, or teach this test", path)
			return nil
		}
		out = append(out, sample{path: path, kind: k})
		var node struct {
			Label string `yaml:"label"`
		}
		data, err := os.ReadFile(path)
		if err == nil {
			err = yaml.Unmarshal(data, &node)
		}
		if err != nil {
			return err
		}
		if _, err := pki.Issue(caDir, node.Label, filepath.Dir(path), 0, false); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	if len(out) == 0 {
		t.Fatalf("no sample configuration found under %s", samplesDir)
	}
	return out
}

// writeConfig writes content to a file named name in a fresh directory and
// returns its path.
func writeConfig(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// leaves expands errors.Join trees into their leaves, in order.
func leaves(err error) []error {
	if err == nil {
		return nil
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, leaves(e)...)
	}
	return out
}

// problem is an expected configuration problem: its line, its key and a
// part of its message.
type problem struct {
	line int
	key  string
	msg  string
}

func (p problem) String() string {
	return strconv.Itoa(p.line) + ": " + p.key + ": ..." + p.msg + "..."
}

// checkProblems fails the test unless err holds exactly the problems want,
// in order, each a *daemon.ConfigError naming path.
func checkProblems(t *testing.T, path string, err error, want []problem) {
	t.Helper()
	if err == nil {
		t.Fatalf("loaded without error; want %v", want)
	}
	got := leaves(err)
	for i, e := range got {
		var ce *daemon.ConfigError
		if !errors.As(e, &ce) {
			t.Errorf("problem %d is %T, not a *daemon.ConfigError: %v", i, e, e)
			continue
		}
		if ce.File != path {
			t.Errorf("problem %d names file %q, want %q", i, ce.File, path)
		}
		if !strings.HasPrefix(e.Error(), path+":") {
			t.Errorf("problem %d does not start with %q: %v", i, path+":", e)
		}
		if i >= len(want) {
			continue
		}
		w := want[i]
		msg := ""
		if ce.Err != nil {
			msg = ce.Err.Error()
		}
		if ce.Line != w.line || ce.Key != w.key || !strings.Contains(msg, w.msg) {
			t.Errorf("problem %d:\n got line %d key %q: %s\nwant line %d key %q: ...%s...", i, ce.Line, ce.Key, msg, w.line, w.key, w.msg)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(got), len(want), err)
	}
}

func TestSampleConfigs(t *testing.T) {
	for _, s := range samples(t) {
		t.Run(filepath.ToSlash(s.path[strings.LastIndex(s.path, "/configs/")+len("/configs/"):]), func(t *testing.T) {
			cfg, err := Load(s.kind, s.path)
			if err != nil {
				t.Fatalf("%s %s:\n%v", s.kind.Name, s.path, err)
			}
			if cfg.Kind().Name != s.kind.Name || cfg.File() != s.path {
				t.Errorf("Kind() = %q, File() = %q; want %q, %q", cfg.Kind().Name, cfg.File(), s.kind.Name, s.path)
			}
			// What the configuration accepts, the node must accept too.
			if errs := cfg.MuxConfig(nil).Validate(); len(errs) > 0 {
				t.Errorf("mux rejects the loaded configuration: %v", errors.Join(errs...))
			}
			dir := filepath.Dir(s.path)
			if f := cfg.Log.File; f != "" && filepath.Dir(f) != dir {
				t.Errorf("log.file %q is not resolved against %s", f, dir)
			}
			if e := cfg.Events; e != nil {
				for _, p := range []string{e.File, e.State, e.Spool.Dir} {
					if p != "" && !filepath.IsAbs(p) && !strings.HasPrefix(p, dir) {
						t.Errorf("events path %q is not resolved against %s", p, dir)
					}
				}
			}
		})
	}
}

// Minimal valid configurations, one per kind.
const (
	okRelay = `label: r1
parents:
  - label: epp
    dial: epp-host:7101
    insecure_plaintext: true
`
	okGWProxy = `label: gwp
parents:
  - label: r1
    dial: 127.0.0.1:7103
    insecure_plaintext: true
services:
  - name: endpoint
    addrs: [10.1.2.3:9495]
entries:
  - name: upcall
    listen: 127.0.0.1:9494
    dest: epp
    service: gateway
`
	okEPProxy = `label: epp
children:
  - label: r1
    listen: 127.0.0.1:7101
    insecure_plaintext: true
services:
  - name: gateway
    addrs: [gw:9494]
`
	okEventSink = `label: es
parents:
  - label: gwp
    dial: 127.0.0.1:7201
    insecure_plaintext: true
events:
  dest: epp
  spool:
    dir: spool
  listeners:
    - name: eif
      listen: 127.0.0.1:5529
      framing: eif
`
)

func TestLoadDefaults(t *testing.T) {
	for _, tc := range []struct {
		kind Kind
		yaml string
	}{{Relay, okRelay}, {GWProxy, okGWProxy}, {EPProxy, okEPProxy}, {EventSink, okEventSink}} {
		t.Run(tc.kind.Name, func(t *testing.T) {
			path := writeConfig(t, tc.kind.Name+".yaml", tc.yaml)
			cfg, err := Load(tc.kind, path)
			if err != nil {
				t.Fatalf("%v", err)
			}
			want := Default(tc.kind)
			if !reflect.DeepEqual(cfg.Tuning, want.Tuning) || cfg.ShutdownGrace != 10*time.Second || !reflect.DeepEqual(cfg.Log, want.Log) {
				t.Errorf("defaults not kept:\n tuning %+v\n grace %s\n log %+v", cfg.Tuning, cfg.ShutdownGrace, cfg.Log)
			}
			if got, want := cfg.Tuning.MuxTuning(), mux.DefaultTuning(); !reflect.DeepEqual(got, want) {
				t.Errorf("MuxTuning() = %+v, want the mux defaults %+v", got, want)
			}
			if errs := cfg.MuxConfig(nil).Validate(); len(errs) > 0 {
				t.Errorf("mux rejects it: %v", errors.Join(errs...))
			}
		})
	}
}

func TestLoadEventSinkDefaultsAndPaths(t *testing.T) {
	path := writeConfig(t, "eventsink.yaml", okEventSink+"log:\n  file: logs/es.log\n")
	dir := filepath.Dir(path)
	cfg, err := Load(EventSink, path)
	if err != nil {
		t.Fatal(err)
	}
	e := cfg.Events
	want := DefaultEvents()
	want.Dest = "epp"
	want.Spool.Dir = filepath.Join(dir, "spool")
	want.State = filepath.Join(dir, "events-state.json")
	want.Listeners = []EventListener{{Name: "eif", Protocol: "tcp", Listen: "127.0.0.1:5529", Framing: "eif", MaxConnsPerSource: 64, IdleTimeout: 5 * time.Minute}}
	if !reflect.DeepEqual(*e, want) {
		t.Errorf("events:\n got %+v\nwant %+v", *e, want)
	}
	if got := cfg.Log.File; got != filepath.Join(dir, "logs", "es.log") {
		t.Errorf("log.file = %q, want it beside the configuration", got)
	}
}

func TestLoadEPProxyEventsPaths(t *testing.T) {
	abs := filepath.Join(t.TempDir(), "abs.jsonl")
	path := writeConfig(t, "epproxy.yaml", okEPProxy+"events:\n  file: "+abs+"\n  state: st/state.json\n")
	cfg, err := Load(EPProxy, path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Events.File != abs {
		t.Errorf("absolute events.file changed to %q", cfg.Events.File)
	}
	if want := filepath.Join(filepath.Dir(path), "st", "state.json"); cfg.Events.State != want {
		t.Errorf("events.state = %q, want %q", cfg.Events.State, want)
	}
	if cfg.Events.Service != "events" || cfg.Events.WriteTimeout != 10*time.Second {
		t.Errorf("events defaults lost: %+v", cfg.Events)
	}
}

// TestLoadAccepts holds configurations near the edge of what is allowed.
func TestLoadAccepts(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind Kind
		yaml string
	}{
		{"links share one listen address", Relay, `label: r2
parents:
  - label: r1
    listen: 127.0.0.1:7102
    insecure_plaintext: true
children:
  - label: gwp-a
    listen: 127.0.0.1:7103
    insecure_plaintext: true
  - label: gwp-b
    listen: 127.0.0.1:7103
    insecure_plaintext: true
`},
		{"udp and tcp intake on one port", EventSink, okEventSink + `    - name: syslog
      protocol: udp
      listen: 127.0.0.1:5529
      framing: lines
`},
		{"sizes as numbers and units", Relay, okRelay + "tuning:\n  window_size: 262144\n"},
		{"tree query tuning", EPProxy, okEPProxy + "tuning:\n  tree_timeout: 2s\n  tree_answer_max: 256KiB\n"},
		{"size with a space before its unit", Relay, okRelay + "tuning:\n  window_size: 1 GiB\n"},
		{"dial_timeout equal to open_timeout", Relay, okRelay + "tuning:\n  dial_timeout: 15s\n  open_timeout: 15s\n"},
		{"zero shutdown grace and idle timeout", Relay, okRelay + "shutdown_grace: 0s\ntuning:\n  idle_timeout: 0s\n"},
		{"epproxy events to a server", EPProxy, okEPProxy + "events:\n  server: tec:5529\n"},
		{"IPv6 addresses", GWProxy, `label: gwp
parents:
  - label: r1
    dial: "[::1]:7103"
    insecure_plaintext: true
entries:
  - name: upcall
    listen: "[::1]:9494"
    dest: epp
    service: gateway
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, tc.kind.Name+".yaml", tc.yaml)
			cfg, err := Load(tc.kind, path)
			if err != nil {
				t.Fatalf("%v", err)
			}
			if errs := cfg.MuxConfig(nil).Validate(); len(errs) > 0 {
				t.Errorf("mux rejects it: %v", errors.Join(errs...))
			}
		})
	}
}

// brokenConfigs are configurations that Load must reject, each with every
// problem it must report. Also seeds for FuzzLoad.
var brokenConfigs = []struct {
	name string
	kind Kind
	yaml string
	want []problem
}{
	{"unknown top-level key", Relay, okRelay + "bogus: 1\n",
		[]problem{{6, "bogus", "unknown key"}}},
	{"unknown nested key", Relay, "label: r1\nparents:\n  - label: epp\n    dial: h:1\n    insecure_plaintext: true\n    port: 7\n",
		[]problem{{6, "parents[0].port", "unknown key"}}},
	{"unknown key in tuning", Relay, okRelay + "tuning:\n  keepalive: 10s\n",
		[]problem{{7, "tuning.keepalive", "unknown key"}}},
	{"unknown key in events listener", EventSink, okEventSink + "      tls: true\n",
		[]problem{{14, "events.listeners[0].tls", "unknown key"}}},
	{"string for an int", Relay, okRelay + "log:\n  level: loud\n",
		[]problem{{7, "log.level", `cannot use string "loud" as int`}}},
	{"mapping for a string", Relay, "label: r1\nparents:\n  - label: epp\n    dial: {h: 1}\n    insecure_plaintext: true\n",
		[]problem{{4, "parents[0].dial", "cannot use a mapping as string"}}},
	{"list for a string", Relay, okRelay + "log:\n  format: [text]\n",
		[]problem{{7, "log.format", "cannot use a list as string"}}},
	{"string for a list", Relay, "label: r1\nparents: epp\n",
		[]problem{{2, "parents", `cannot use string "epp" as []chain.Link`}}},
	{"duration as an integer", Relay, okRelay + "tuning:\n  write_timeout: 10\n",
		[]problem{{7, "tuning.write_timeout", `duration 10 has no unit: write it like "10s"`}}},
	{"duration without unit in shutdown_grace", Relay, okRelay + "shutdown_grace: 5\n",
		[]problem{{6, "shutdown_grace", "duration 5 has no unit"}}},
	{"bad duration string", Relay, okRelay + "tuning:\n  open_timeout: soon\n",
		[]problem{{7, "tuning.open_timeout", `invalid duration string "soon"`}}},
	{"negative duration", Relay, okRelay + "tuning:\n  keepalive_interval: -1s\n",
		[]problem{{7, "tuning.keepalive_interval", "must be positive"}}},
	{"zero duration", Relay, okRelay + "tuning:\n  hello_timeout: 0s\n",
		[]problem{{7, "tuning.hello_timeout", "must be positive"}}},
	{"zero tree timeout", Relay, okRelay + "tuning:\n  tree_timeout: 0s\n",
		[]problem{{7, "tuning.tree_timeout", "must be positive"}}},
	{"tiny tree answer cap", Relay, okRelay + "tuning:\n  tree_answer_max: 100\n",
		[]problem{{7, "tuning.tree_answer_max", "between 4KiB and 64MiB"}}},
	{"negative idle timeout", Relay, okRelay + "tuning:\n  idle_timeout: -5m\n",
		[]problem{{7, "tuning.idle_timeout", "must not be negative"}}},
	{"negative shutdown grace", Relay, okRelay + "shutdown_grace: -1s\n",
		[]problem{{6, "shutdown_grace", "must not be negative"}}},
	{"missing label", Relay, "parents:\n  - label: epp\n    dial: h:1\n    insecure_plaintext: true\n",
		[]problem{{1, "label", "missing"}}},
	{"bad label characters", Relay, "label: relay one\nparents:\n  - label: epp\n    dial: h:1\n    insecure_plaintext: true\n",
		[]problem{{1, "label", `character ' ' not allowed`}}},
	{"label starting with a dot", Relay, "label: .r\nparents:\n  - label: epp\n    dial: h:1\n    insecure_plaintext: true\n",
		[]problem{{1, "label", "must start with a letter or digit"}}},
	{"label too long", Relay, "label: " + strings.Repeat("a", 65) + "\nparents:\n  - label: epp\n    dial: h:1\n    insecure_plaintext: true\n",
		[]problem{{1, "label", "65 characters long"}}},
	{"link without label", Relay, "label: r1\nparents:\n  - dial: h:1\n    insecure_plaintext: true\n",
		[]problem{{3, "parents[0].label", "missing"}}},
	{"link with a bad label", Relay, "label: r1\nparents:\n  - label: e/p\n    dial: h:1\n    insecure_plaintext: true\n",
		[]problem{{3, "parents[0].label", `character '/' not allowed`}}},
	{"link with no direction", Relay, "label: r1\nparents:\n  - label: epp\n    insecure_plaintext: true\n",
		[]problem{{3, "parents[0]", "link to epp has no direction"}}},
	{"link with both directions", Relay, "label: r1\nparents:\n  - label: epp\n    dial: h:1\n    insecure_plaintext: true\n    listen: :7000\n",
		[]problem{{3, "parents[0]", "sets both dial and listen"}}},
	{"label used twice", Relay, okRelay + "children:\n  - label: gwp\n    listen: :7103\n    insecure_plaintext: true\n  - label: epp\n    dial: h:2\n    insecure_plaintext: true\n",
		[]problem{{10, "children[1].label", "label epp is used twice (first at parents[0].label)"}}},
	{"link to the node's own label", Relay, okRelay + "children:\n  - label: r1\n    dial: h:2\n    insecure_plaintext: true\n",
		[]problem{{7, "children[0].label", "r1 is this node's own label"}}},
	{"two entries on one port", GWProxy, okGWProxy + "  - name: second\n    listen: 127.0.0.1:9494\n    dest: epp\n    service: gateway\n",
		[]problem{{15, "entries[1].listen", "port clash: 127.0.0.1:9494 is also used at entries[0].listen"}}},
	{"entry on a link's listen port", EPProxy, okEPProxy + "entries:\n  - name: down\n    listen: 127.0.0.1:7101\n    dest: gwp\n    service: endpoint\n",
		[]problem{{11, "entries[0].listen", "port clash: 127.0.0.1:7101 is also used at children[0].listen"}}},
	{"wildcard and loopback on one port", GWProxy, okGWProxy + "  - name: second\n    listen: :9494\n    dest: epp\n    service: gateway\n",
		[]problem{{15, "entries[1].listen", "port clash"}}},
	{"two links on overlapping listen addresses", Relay, okRelay + "children:\n  - label: a\n    listen: :7000\n    insecure_plaintext: true\n  - label: b\n    listen: 127.0.0.1:7000\n    insecure_plaintext: true\n",
		[]problem{{11, "children[1].listen", "port clash: 127.0.0.1:7000 is also used at children[0].listen"}}},
	{"one port written two ways", Relay, okRelay + "children:\n  - label: a\n    listen: :7000\n    insecure_plaintext: true\n  - label: b\n    listen: 0.0.0.0:07000\n    insecure_plaintext: true\n",
		[]problem{{11, "children[1].listen", "port clash"}}},
	{"one IPv6 address written two ways", Relay, okRelay + "children:\n  - label: a\n    listen: \"[::1]:7000\"\n    insecure_plaintext: true\n  - label: b\n    listen: \"[0:0::1]:7000\"\n    insecure_plaintext: true\n",
		[]problem{{11, "children[1].listen", "port clash"}}},
	{"two tcp intake listeners on one port", EventSink, okEventSink + "    - name: lines\n      listen: 0.0.0.0:5529\n      framing: lines\n",
		[]problem{{15, "events.listeners[1].listen", "port clash"}}},
	{"child link on an entry port", GWProxy, okGWProxy + "children:\n  - label: es\n    listen: 127.0.0.1:9494\n    insecure_plaintext: true\n",
		[]problem{{11, "entries[0].listen", "port clash: 127.0.0.1:9494 is also used at children[0].listen"}}},
	{"intake on a link's listen port", EventSink, "label: es\nparents:\n  - label: gwp\n    listen: 127.0.0.1:5529\n    insecure_plaintext: true\n" + okEventSink[strings.Index(okEventSink, "events:"):],
		[]problem{{12, "events.listeners[0].listen", "port clash: 127.0.0.1:5529 is also used at parents[0].listen"}}},
	{"dial without port", Relay, "label: r1\nparents:\n  - label: epp\n    dial: epp-host\n    insecure_plaintext: true\n",
		[]problem{{4, "parents[0].dial", "missing port in address"}}},
	{"dial port out of range", Relay, "label: r1\nparents:\n  - label: epp\n    dial: epp-host:70000\n    insecure_plaintext: true\n",
		[]problem{{4, "parents[0].dial", "port 70000 out of range"}}},
	{"dial without host", Relay, "label: r1\nparents:\n  - label: epp\n    dial: :7101\n    insecure_plaintext: true\n",
		[]problem{{4, "parents[0].dial", "host is missing"}}},
	{"listen on port zero", Relay, "label: r1\nparents:\n  - label: epp\n    listen: 127.0.0.1:0\n    insecure_plaintext: true\n",
		[]problem{{4, "parents[0].listen", "port 0 out of range"}}},
	{"bad host name", Relay, "label: r1\nparents:\n  - label: epp\n    dial: bad_host!:1\n    insecure_plaintext: true\n",
		[]problem{{4, "parents[0].dial", "bad host name"}}},
	{"relay with services", Relay, okRelay + "services:\n  - name: x\n    addrs: [h:1]\n",
		[]problem{{6, "services", "a relay offers no services"}}},
	{"relay with entries", Relay, okRelay + "entries:\n  - name: x\n    listen: :1\n    dest: epp\n    service: s\n",
		[]problem{{6, "entries", "a relay has no entries"}}},
	{"epproxy with parents", EPProxy, okEPProxy + "parents:\n  - label: up\n    dial: h:1\n    insecure_plaintext: true\n",
		[]problem{{9, "parents", "an epproxy has no parents"}}},
	{"eventsink with children", EventSink, okEventSink + "children:\n  - label: x\n    dial: h:1\n    insecure_plaintext: true\n",
		[]problem{{14, "children", "an eventsink has no children"}}},
	{"gwproxy without parents", GWProxy, "label: gwp\nservices:\n  - name: endpoint\n    addrs: [h:1]\n",
		[]problem{{1, "parents", "missing: a gwproxy needs at least one parent"}}},
	{"service without addrs", EPProxy, "label: epp\nservices:\n  - name: gateway\n",
		[]problem{{3, "services[0].addrs", "missing: at least one HOST:PORT"}}},
	{"service with a bad addr and a bad allow", EPProxy, "label: epp\nservices:\n  - name: gateway\n    addrs: [gw]\n    allow: [\"a b\"]\n",
		[]problem{{4, "services[0].addrs[0]", "missing port"}, {5, "services[0].allow[0]", "not allowed"}}},
	{"service without name", EPProxy, "label: epp\nservices:\n  - addrs: [gw:1]\n",
		[]problem{{3, "services[0].name", "missing"}}},
	{"duplicate service names", EPProxy, okEPProxy + "  - name: gateway\n    addrs: [gw2:9494]\n",
		[]problem{{9, "services[1].name", "service gateway is defined twice"}}},
	{"entry without dest and service", GWProxy, "label: gwp\nparents:\n  - label: r1\n    dial: h:1\n    insecure_plaintext: true\nentries:\n  - name: up\n    listen: :9494\n",
		[]problem{{7, "entries[0].dest", "missing"}, {7, "entries[0].service", "missing"}}},
	{"entry without name and listen", GWProxy, "label: gwp\nparents:\n  - label: r1\n    dial: h:1\n    insecure_plaintext: true\nentries:\n  - dest: epp\n    service: gateway\n",
		[]problem{{7, "entries[0].name", "missing"}, {7, "entries[0].listen", "missing"}}},
	{"entry to the node itself", GWProxy, "label: gwp\nparents:\n  - label: r1\n    dial: h:1\n    insecure_plaintext: true\nentries:\n  - name: up\n    listen: :9494\n    dest: gwp\n    service: s\n",
		[]problem{{9, "entries[0].dest", "gwp is this node itself"}}},
	{"duplicate entry names", GWProxy, okGWProxy + "  - name: upcall\n    listen: 127.0.0.1:9495\n    dest: epp\n    service: gateway\n",
		[]problem{{14, "entries[1].name", "entry upcall is defined twice"}}},
	{"window size below minimum", Relay, okRelay + "tuning:\n  window_size: 128KiB\n",
		[]problem{{7, "tuning.window_size", "131072 bytes is below the minimum of 256KiB"}}},
	{"window size above maximum", Relay, okRelay + "tuning:\n  window_size: 2GiB\n",
		[]problem{{7, "tuning.window_size", "above the maximum of 1GiB"}}},
	{"bad size string", Relay, okRelay + "tuning:\n  window_size: 8XB\n",
		[]problem{{7, "tuning.window_size", `cannot use string "8XB" as chain.ByteSize`}}},
	{"long bad size string", Relay, okRelay + "tuning:\n  window_size: 8 megabytes\n",
		[]problem{{7, "tuning.window_size", `cannot use string "8 megab..." as chain.ByteSize`}}},
	{"list for a size", Relay, okRelay + "tuning:\n  window_size: [8MiB]\n",
		[]problem{{7, "tuning.window_size", "cannot use a list as chain.ByteSize"}}},
	{"negative size", EventSink, okEventSink + "  max_event_bytes: -1\n",
		[]problem{{14, "events.max_event_bytes", `cannot use integer "-1" as chain.ByteSize`}}},
	{"reconnect_min above reconnect_max", Relay, okRelay + "tuning:\n  reconnect_min: 1m\n  reconnect_max: 30s\n",
		[]problem{{7, "tuning.reconnect_min", "1m0s is above reconnect_max 30s"}}},
	{"dial_timeout above open_timeout", Relay, okRelay + "tuning:\n  dial_timeout: 20s\n",
		[]problem{{7, "tuning.dial_timeout", "20s is above open_timeout 15s"}}},
	{"zero accept backlog and max sessions", Relay, okRelay + "tuning:\n  accept_backlog: 0\n  max_sessions: -1\n",
		[]problem{{7, "tuning.accept_backlog", "must be positive"}, {8, "tuning.max_sessions", "must be positive"}}},
	{"storm limits off", Relay, okRelay + "tuning:\n  max_handshake_rate: 0\n  handshake_burst: -1\n  reconnect_spread: 0s\n",
		[]problem{{8, "tuning.handshake_burst", "must be positive"}, {9, "tuning.reconnect_spread", "must be positive"}, {7, "tuning.max_handshake_rate", "must be positive"}}},
	{"duplicate YAML key", Relay, okRelay + "label: r2\n",
		[]problem{{6, "label", "duplicate key (first at line 1)"}}},
	{"empty file", Relay, "",
		[]problem{{0, "", "configuration is empty"}}},
	{"only comments", Relay, "# nothing here\n",
		[]problem{{0, "", "configuration is empty"}}},
	{"multiple documents", Relay, okRelay + "---\nlabel: r2\n",
		[]problem{{6, "", "a second YAML document is not allowed"}}},
	{"not a mapping", Relay, "- label: r1\n",
		[]problem{{1, "", "cannot use a list as chain.Config"}}},
	{"syntax error", Relay, "label: r1\nparents: [\n",
		[]problem{{2, "", "did not find expected node content"}}},
	{"log level out of range", Relay, okRelay + "log:\n  level: 9\n",
		[]problem{{7, "log.level", "must be 0..5, not 9"}}},
	{"bad log format", Relay, okRelay + "log:\n  format: xml\n",
		[]problem{{7, "log.format", `not "xml"`}}},
	{"epproxy events without server or file", EPProxy, okEPProxy + "events:\n  service: events\n",
		[]problem{{9, "events", "set server"}}},
	{"epproxy events with a bad server", EPProxy, okEPProxy + "events:\n  server: tec\n",
		[]problem{{10, "events.server", "missing port"}}},
	{"eventsink keys on an epproxy", EPProxy, okEPProxy + "events:\n  file: ev.jsonl\n  dest: epp\n  spool:\n    dir: s\n",
		[]problem{{11, "events.dest", "is an eventsink setting"}, {12, "events.spool", "is an eventsink setting"}}},
	{"epproxy keys on an eventsink", EventSink, okEventSink + "  server: tec:5529\n",
		[]problem{{14, "events.server", "is an epproxy setting"}}},
	{"eventsink without dest, spool dir and listeners", EventSink, "label: es\nparents:\n  - label: gwp\n    dial: h:1\n    insecure_plaintext: true\nevents:\n  batch_events: 10\n",
		[]problem{{6, "events.dest", "missing"}, {6, "events.spool.dir", "missing"}, {6, "events.listeners", "missing"}}},
	{"eventsink without events", EventSink, "label: es\nparents:\n  - label: gwp\n    dial: h:1\n    insecure_plaintext: true\n",
		[]problem{{1, "events", "missing: an eventsink needs its events section"}}},
	{"eventsink with empty events", EventSink, "label: es\nparents:\n  - label: gwp\n    dial: h:1\n    insecure_plaintext: true\nevents:\n",
		[]problem{{6, "events", "missing: an eventsink needs its events section"}}},
	{"bad framing", EventSink, strings.Replace(okEventSink, "framing: eif", "framing: json", 1),
		[]problem{{13, "events.listeners[0].framing", `"json": want "eif" or "lines"`}}},
	{"missing framing", EventSink, strings.Replace(okEventSink, "      framing: eif\n", "", 1),
		[]problem{{11, "events.listeners[0].framing", "missing"}}},
	{"bad protocol", EventSink, okEventSink + "      protocol: sctp\n",
		[]problem{{14, "events.listeners[0].protocol", `"sctp": want "tcp" or "udp"`}}},
	{"bad when_full", EventSink, strings.Replace(okEventSink, "    dir: spool\n", "    dir: spool\n    when_full: block\n", 1),
		[]problem{{10, "events.spool.when_full", `"block": want "refuse" or "drop-oldest"`}}},
	{"bad fsync", EventSink, strings.Replace(okEventSink, "    dir: spool\n", "    dir: spool\n    fsync: never\n", 1),
		[]problem{{10, "events.spool.fsync", `"never": want "always" or "interval"`}}},
	{"spool sizes", EventSink, strings.Replace(okEventSink, "    dir: spool\n", "    dir: spool\n    max_bytes: 512KiB\n", 1),
		[]problem{{10, "events.spool.max_bytes", "at least 1MiB"}, {8, "events.spool.segment_bytes", "at most half of max_bytes"}}},
	{"batch smaller than an event", EventSink, okEventSink + "  max_event_bytes: 1MiB\n",
		[]problem{{6, "events.batch_bytes", "at least twice max_event_bytes"}}},
	{"duplicate intake names", EventSink, okEventSink + "    - name: eif\n      listen: 127.0.0.1:5530\n      framing: eif\n",
		[]problem{{14, "events.listeners[1].name", "listener eif is defined twice"}}},
	{"relay with events", Relay, okRelay + "events:\n  server: tec:1\n",
		[]problem{{6, "events", "a relay has no events section"}}},
	{"relay with empty events", Relay, okRelay + "events:\n",
		[]problem{{6, "events", "a relay has no events section"}}},
	{"gwproxy with events", GWProxy, okGWProxy + "events:\n  dest: epp\n",
		[]problem{{14, "events", "a gwproxy has no events section"}}},
}

func TestLoadRejects(t *testing.T) {
	for _, tc := range brokenConfigs {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, tc.kind.Name+".yaml", tc.yaml)
			cfg, err := Load(tc.kind, path)
			if cfg != nil {
				t.Errorf("Load returned a configuration along with %v", err)
			}
			checkProblems(t, path, err, tc.want)
		})
	}
}

func TestLoadEmptyIsErrEmptyConfig(t *testing.T) {
	path := writeConfig(t, "relay.yaml", "~\n")
	_, err := Load(Relay, path)
	if !errors.Is(err, daemon.ErrEmptyConfig) {
		t.Fatalf("err = %v, want daemon.ErrEmptyConfig", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.yaml")
	_, err := Load(Relay, path)
	var ce *daemon.ConfigError
	if !errors.As(err, &ce) || ce.File != path || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want a ConfigError for %s wrapping fs.ErrNotExist", err, path)
	}
}

// TestLoadReportsEveryProblem checks that one file's problems come all at
// once, in file order within each check, both from validation and from
// decoding.
func TestLoadReportsEveryProblem(t *testing.T) {
	t.Run("validation", func(t *testing.T) {
		path := writeConfig(t, "gwproxy.yaml", `label: gwp one
log:
  level: 7
children:
  - label: es
    insecure_plaintext: true
entries:
  - name: up
    listen: 127.0.0.1:9494
    dest: epp
  - name: up
    listen: 127.0.0.1:9494
    dest: epp
    service: gateway
tuning:
  window_size: 1KiB
  reconnect_min: 1m
shutdown_grace: -1s
`)
		_, err := Load(GWProxy, path)
		checkProblems(t, path, err, []problem{
			{1, "label", "not allowed"},
			{3, "log.level", "must be 0..5"},
			{5, "children[0]", "no direction"},
			{1, "parents", "missing"},
			{8, "entries[0].service", "missing"},
			{11, "entries[1].name", "defined twice"},
			{12, "entries[1].listen", "port clash"},
			{16, "tuning.window_size", "below the minimum"},
			{17, "tuning.reconnect_min", "above reconnect_max"},
			{18, "shutdown_grace", "must not be negative"},
		})
	})
	t.Run("decoding", func(t *testing.T) {
		path := writeConfig(t, "relay.yaml", `label: r1
colour: blue
parents:
  - label: epp
    dial: h:1
tuning:
  window_size: lots
  write_timeout: 10
log:
  level: high
`)
		_, err := Load(Relay, path)
		checkProblems(t, path, err, []problem{
			{2, "colour", "unknown key"},
			{7, "tuning.window_size", "as chain.ByteSize"},
			{8, "tuning.write_timeout", "has no unit"},
			{10, "log.level", "as int"},
		})
	})
}

func TestParseByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ByteSize
	}{
		{"0", 0},
		{"4096", 4096},
		{"8388608", 8 << 20},
		{"1B", 1},
		{"512KiB", 512 << 10},
		{"8MiB", 8 << 20},
		{"2GiB", 2 << 30},
		{"1KB", 1000},
		{"3MB", 3_000_000},
		{"1GB", 1_000_000_000},
		{" 8 MiB ", 8 << 20},
		{"007KiB", 7 << 10},
		{"9223372036854775808", 1 << 63},
		{"8589934592GiB", 1 << 63},
	} {
		got, err := ParseByteSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, msg string }{
		{"", "want a whole number"},
		{"MiB", "want a whole number"},
		{"8XB", "want a whole number"},
		{"8mib", "want a whole number"},
		{"8 M", "want a whole number"},
		{"-1", "want a whole number"},
		{"+1", "want a whole number"},
		{"1.5MiB", "want a whole number"},
		{"0x10", "want a whole number"},
		{"1_000", "want a whole number"},
		{"8MiBKiB", "want a whole number"},
		{"9223372036854775809", "too large"},
		{"18446744073709551616", "too large"},
		{"99999999999999999999999", "too large"},
		{"8589934593GiB", "too large"},
		{"18446744073709551615KiB", "too large"},
	} {
		got, err := ParseByteSize(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), strconv.Quote(tc.in)) {
			t.Errorf("ParseByteSize(%q) = %d, %v; want an error naming the input with %q", tc.in, got, err, tc.msg)
		}
	}
}

func TestKindWithArticle(t *testing.T) {
	for k, want := range map[*Kind]string{&EPProxy: "an epproxy", &GWProxy: "a gwproxy", &Relay: "a relay", &EventSink: "an eventsink"} {
		if got := k.withArticle(); got != want {
			t.Errorf("%s: %q, want %q", k.Name, got, want)
		}
	}
}
