package chain

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

func TestLoadRegistryKeys(t *testing.T) {
	path := writeConfig(t, "gwproxy.yaml", `label: gwp-a
tls: {cert: a.crt, key: a.key, ca: ca.crt}
parents:
  - label: epp
    dial: 127.0.0.1:7000
register_endpoints: true
endpoint_ttl: 36h
max_endpoints: 500
`)
	c, err := LoadWith(GWProxy, path, LoadOptions{SkipTLSFiles: true})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	mc := c.MuxConfig(nil)
	if !mc.RegisterEndpoints || mc.EndpointTTL != 36*time.Hour || mc.MaxEndpoints != 500 {
		t.Fatalf("mux config: register %v ttl %s max %d", mc.RegisterEndpoints, mc.EndpointTTL, mc.MaxEndpoints)
	}

	path = writeConfig(t, "epproxy.yaml", `label: epp
tls: {cert: a.crt, key: a.key, ca: ca.crt}
registry_file: state/reg.json
entries:
  - name: legacy
    listen: 127.0.0.1:19600-19699
    kind: port_map
    endpoint_port: 443
    rules: [{action: allow, sources: [127.0.0.1]}]
`)
	c, err = LoadWith(EPProxy, path, LoadOptions{SkipTLSFiles: true})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if want := dirOf(path) + "/state/reg.json"; c.RegistryPath() != want {
		t.Errorf("registry path %s, want %s", c.RegistryPath(), want)
	}
	if h, lo, hi, err := portRange(firstAddr(c.Entries[0].Listen)); err != nil || h != "127.0.0.1" || lo != 19600 || hi != 19699 {
		t.Errorf("port range %q: %s %d %d %v", c.Entries[0].Listen, h, lo, hi, err)
	}
}

func dirOf(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return "."
}

func TestLoadRegistryRejects(t *testing.T) {
	path := writeConfig(t, "epproxy.yaml", `label: epp
tls: {cert: a.crt, key: a.key, ca: ca.crt}
register_endpoints: true
endpoint_ttl: -1s
entries:
  - name: pm1
    listen: 127.0.0.1:19600
    kind: port_map
  - name: pm2
    listen: 127.0.0.1:19650-19700
    kind: port_map
    endpoint_port: 22
    dest: gwp-a
    rules: [{action: allow, sources: [127.0.0.1]}]
  - name: pm3
    listen: 127.0.0.1:19700-19800
    kind: port_map
    endpoint_port: 22
    rules: [{action: deny, sources: [10.0.0.0/8]}]
`)
	_, err := LoadWith(EPProxy, path, LoadOptions{SkipTLSFiles: true})
	checkProblems(t, path, err, []problem{
		{7, "entries[0].listen", "HOST:LOW-HIGH"},
		{6, "entries[0].rules", "missing: a port_map entry denies every client"},
		{6, "entries[0].endpoint_port", "want the port"},
		{11, "entries[1].kind", "no service, dest or users"},
		{10, "entries[1].listen", "overlap"},
		{19, "entries[2].rules", "no rule allows anything"},
		{16, "entries[2].listen", "overlap"},
		{3, "register_endpoints", "only a gwproxy"},
		{4, "endpoint_ttl", "negative"},
	})
}

// keeperConfig is an epproxy configuration with a port_map entry of the
// ports lo..lo+size-1, its registry file in dir.
func keeperConfig(t *testing.T, dir string, lo, size int) *Config {
	t.Helper()
	path := dir + "/epproxy.yaml"
	err := os.WriteFile(path, []byte(`label: epp
tls: {cert: a.crt, key: a.key, ca: ca.crt}
entries:
  - name: legacy
    listen: 127.0.0.1:`+strconv.Itoa(lo)+"-"+strconv.Itoa(lo+size-1)+`
    kind: port_map
    endpoint_port: 443
    rules: [{action: allow, sources: [127.0.0.1]}]
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	c, err := LoadWith(EPProxy, path, LoadOptions{SkipTLSFiles: true})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// freeRange finds size consecutive free ports on 127.0.0.1.
func freeRange(t *testing.T, size int) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		lo := muxtest.FreePort(t)
		if lo+size > 65535 {
			continue
		}
		ok := true
		for p := lo; p < lo+size && ok; p++ {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				ok = false
				break
			}
			_ = ln.Close()
		}
		if ok {
			return lo
		}
	}
	t.Skip("no range of free ports")
	return 0
}

func ports(k *registryKeeper) map[string]int {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := map[string]int{}
	for a, p := range k.ports["legacy"] {
		out[a] = p
	}
	return out
}

// The registry and the port of each endpoint survive a restart of the
// epproxy: the file written by one keeper is read by the next, which
// keeps the ports and gives a new endpoint the next free one; a full
// range is counted.
func TestRegistryKeeperPortsStableAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	lo := freeRange(t, 3)
	cfg := keeperConfig(t, dir, lo, 3)
	root := mux.Config{Label: "epp", Role: mux.RoleRoot, Tuning: muxtest.FastTuning()}
	first := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	ep := func(a, label string) mux.Endpoint {
		return mux.Endpoint{Addr: netip.MustParseAddr(a), Label: label, First: first, Last: first.Add(time.Hour)}
	}

	var stop1 func()
	n1 := muxtest.StartNode(t, root, muxtest.WithStop(&stop1))
	k1, err := newRegistryKeeper(cfg, n1, muxtest.Log(t))
	if err != nil {
		t.Fatal(err)
	}
	n1.LoadEndpoints([]mux.Endpoint{ep("10.0.0.9", "gwp-b"), ep("10.0.0.5", "gwp-a")})
	k1.sync()
	want := map[string]int{"10.0.0.5": lo, "10.0.0.9": lo + 1}
	if got := ports(k1); !mapsEqual(got, want) {
		t.Fatalf("ports %v, want %v", got, want)
	}
	if n1.EntryAddr("legacy:"+strconv.Itoa(lo)) == nil || n1.EntryAddr("legacy:"+strconv.Itoa(lo+1)) == nil {
		t.Fatal("the ports are not bound")
	}
	stop1()

	n2 := muxtest.StartNode(t, root)
	k2, err := newRegistryKeeper(cfg, n2, muxtest.Log(t))
	if err != nil {
		t.Fatal(err)
	}
	eps := n2.Endpoints()
	if len(eps) != 2 || eps[0].Addr.String() != "10.0.0.5" || eps[0].Label != "gwp-a" || !eps[0].First.Equal(first) || eps[0].Active {
		t.Fatalf("endpoints after the restart: %+v", eps)
	}
	// A new endpoint that sorts between the two takes the next free port.
	n2.LoadEndpoints([]mux.Endpoint{ep("10.0.0.7", "gwp-a"), ep("10.0.0.8", "gwp-a")})
	k2.sync()
	want["10.0.0.7"] = lo + 2
	if got := ports(k2); !mapsEqual(got, want) {
		t.Fatalf("ports after the restart %v, want %v", got, want)
	}
	st := n2.Status()
	k2.fill(&st)
	if st.PortMapFull != 1 {
		t.Errorf("port_map full counted %d, want 1 (10.0.0.8)", st.PortMapFull)
	}
	for _, e := range st.Endpoints {
		if p, ok := e.Ports["legacy"]; ok != (e.Addr != "10.0.0.8") || ok && p != want[e.Addr] {
			t.Errorf("status of %s: ports %v", e.Addr, e.Ports)
		}
	}
	// The last one kept in the file too.
	st2, err := loadRegistry(cfg.RegistryPath())
	if err != nil || len(st2.Endpoints) != 4 || st2.Ports["legacy"]["10.0.0.7"] != lo+2 {
		t.Errorf("file: %+v, %v", st2, err)
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// A corrupt registry file refuses the start, naming the file, rather
// than losing the port assignments.
func TestRegistryKeeperCorruptFile(t *testing.T) {
	dir := t.TempDir()
	cfg := keeperConfig(t, dir, 19600, 10)
	if err := os.WriteFile(cfg.RegistryPath(), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := muxtest.StartNode(t, mux.Config{Label: "epp", Role: mux.RoleRoot, Tuning: muxtest.FastTuning()})
	if _, err := newRegistryKeeper(cfg, n, muxtest.Log(t)); err == nil {
		t.Fatal("a corrupt registry file was taken")
	}
}

// A port_map entry needs some gwproxy of the chain that learns endpoints.
func TestSetCheckPortMap(t *testing.T) {
	pm := "entries:\n  - name: legacy\n    listen: 127.0.0.1:9600-9609\n    kind: port_map\n    endpoint_port: 443\n    rules: [{action: allow, sources: [127.0.0.1]}]\n"
	dir := writeChain(t, smallChain, map[string][]string{"epp/epproxy.yaml": {"entries:\n", pm}})
	s, err := LoadSet(dir)
	if err != nil {
		t.Fatalf("LoadSet: %v", err)
	}
	checkChainProblems(t, dir, s.Check(), []chainProblem{
		{"epp/epproxy.yaml", 13, "entries[0].kind", "no gwproxy of the chain given has register_endpoints"},
	})

	dir = writeChain(t, smallChain, map[string][]string{
		"epp/epproxy.yaml": {"entries:\n", pm, "dial: 10.0.1.2:7101\n", "dial: 10.0.1.2:7101\n    accept_networks: [10.1.0.0/16]\n"},
		"gwp/gwproxy.yaml": {"services:\n", "register_endpoints: true\nservices:\n"},
		"r1/relay.yaml":    {"listen: 0.0.0.0:7103\n", "listen: 0.0.0.0:7103\n    accept_networks: [10.1.0.0/16]\n"},
	})
	if s, err = LoadSet(dir); err != nil {
		t.Fatalf("LoadSet: %v", err)
	}
	if err := s.Check(); err != nil {
		t.Fatalf("check: %v", err)
	}
}

// An epproxy that never had an endpoint writes no registry file (its
// configuration folder may be read-only); the first endpoint writes it.
func TestRegistryKeeperWritesOnlyWithEndpoints(t *testing.T) {
	dir := t.TempDir()
	cfg := keeperConfig(t, dir, freeRange(t, 2), 2)
	n := muxtest.StartNode(t, mux.Config{Label: "epp", Role: mux.RoleRoot, Tuning: muxtest.FastTuning()})
	k, err := newRegistryKeeper(cfg, n, muxtest.Log(t))
	if err != nil {
		t.Fatal(err)
	}
	k.sync()
	if _, err := os.Stat(cfg.RegistryPath()); !os.IsNotExist(err) {
		t.Fatalf("registry file with no endpoint: %v", err)
	}
	n.LoadEndpoints([]mux.Endpoint{{Addr: netip.MustParseAddr("10.0.0.5"), Label: "gwp-a", First: time.Now(), Last: time.Now()}})
	k.sync()
	if st, err := loadRegistry(cfg.RegistryPath()); err != nil || len(st.Endpoints) != 1 {
		t.Fatalf("registry file: %+v, %v", st, err)
	}
}

// registry_file is for the epproxy and for a gwproxy that learns its
// endpoints; on a gwproxy that does not, it is refused.
func TestRegistryFileOnGWProxy(t *testing.T) {
	const base = `label: gwp
tls: {cert: a.crt, key: a.key, ca: ca.crt}
parents:
  - label: r1
    dial: 127.0.0.1:7103
registry_file: state/learnt.json
`
	path := writeConfig(t, "gwproxy.yaml", base+"register_endpoints: true\n")
	cfg, err := LoadWith(GWProxy, path, LoadOptions{SkipTLSFiles: true})
	if err != nil {
		t.Fatalf("a gwproxy that learns, with registry_file: %v", err)
	}
	if want := filepath.Join(filepath.Dir(path), "state/learnt.json"); cfg.RegistryPath() != want {
		t.Errorf("RegistryPath = %s, want %s", cfg.RegistryPath(), want)
	}
	path = writeConfig(t, "gwproxy.yaml", base)
	_, err = LoadWith(GWProxy, path, LoadOptions{SkipTLSFiles: true})
	checkProblems(t, path, err, []problem{{6, "registry_file", "a gwproxy with register_endpoints"}})
}
