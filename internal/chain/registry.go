package chain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/internal/atomicfile"
	"github.com/relaychain/relaychain/internal/daemon"
	"github.com/relaychain/relaychain/mux"
)

// This file is the endpoint registry's configuration and, on the
// epproxy, its state file and the port_map entries: ports bound each to
// one endpoint of the registry, for clients that cannot name a
// destination.

// KindPortMap is the kind of an entry whose ports are bound each to one
// endpoint of the registry.
const KindPortMap = "port_map"

// validateRegistry checks the registry's keys.
func (c *Config) validateRegistry(ps *daemon.Problems) {
	if c.RegisterEndpoints && c.kind.Name != GWProxy.Name {
		ps.Errorf("register_endpoints", "only a gwproxy learns endpoints from its upcall entries")
	}
	if c.EndpointTTL < 0 {
		ps.Errorf("endpoint_ttl", "must not be negative")
	}
	if c.MaxEndpoints < 0 {
		ps.Errorf("max_endpoints", "must not be negative")
	}
	if c.RegistryFile != "" && c.kind.Name != EPProxy.Name && !c.RegisterEndpoints {
		ps.Errorf("registry_file", "only the epproxy and a gwproxy with register_endpoints keep a registry")
	}
}

// portRange reads an entry's HOST:LOW-HIGH.
func portRange(listen string) (host string, lo, hi int, err error) {
	i := strings.LastIndexByte(listen, ':')
	if i < 0 {
		return "", 0, 0, fmt.Errorf("%q: want HOST:LOW-HIGH", listen)
	}
	host = strings.Trim(listen[:i], "[]")
	a, b, ok := strings.Cut(listen[i+1:], "-")
	lo, err1 := strconv.Atoi(a)
	hi, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || lo < 1 || hi > 65535 || hi < lo {
		return "", 0, 0, fmt.Errorf("%q: want HOST:LOW-HIGH, ports 1 to 65535", listen)
	}
	if host == "" {
		return "", 0, 0, fmt.Errorf("%q: want a host to listen on", listen)
	}
	return host, lo, hi, nil
}

// validatePortMap checks a port_map entry; p is its key.
func (c *Config) validatePortMap(ps *daemon.Problems, p string, e Entry) {
	if c.kind.Name != EPProxy.Name {
		ps.Errorf(p+".kind", "a port_map entry is for the epproxy: it maps its ports to the endpoints of the registry")
	}
	if len(e.Listen) != 1 {
		ps.Errorf(p+".listen", "want one HOST:LOW-HIGH: a port_map entry listens on one range")
	} else if _, _, _, err := portRange(e.Listen[0]); err != nil {
		ps.Errorf(p+".listen", "%v", err)
	}
	// Its clients name nothing, but they reach endpoints the registry
	// learnt: like the other entries whose destination is not fixed, it
	// denies by default, and its rules decide on the client's source and
	// the endpoint's address.
	acl := parseRulesFor(ps, p+".rules", e.Rules, rulesAddrEntry)
	allows := false
	for _, r := range acl {
		allows = allows || r.Allow
	}
	switch {
	case len(e.Rules) == 0:
		ps.Errorf(p+".rules", "missing: a port_map entry denies every client no rule allows, so without rules it carries nothing; add rules with action allow for its clients' sources (and the endpoints' nets)")
	case !allows && len(acl) == len(e.Rules):
		ps.Errorf(p+".rules", "no rule allows anything: a port_map entry denies by default, so this one carries nothing")
	}
	if e.EndpointPort < 1 || e.EndpointPort > 65535 {
		ps.Errorf(p+".endpoint_port", "want the port each session reaches at its endpoint, 1 to 65535")
	}
	if e.Service != "" || e.Dest != "" || len(e.Users) > 0 {
		ps.Errorf(p+".kind", "a port_map entry has no service, dest or users: each port reaches its endpoint at the gwproxy that learnt it")
	}
	for i, o := range c.Entries {
		if o.Kind != KindPortMap || o.Name == e.Name {
			continue
		}
		h1, lo1, hi1, err1 := portRange(firstAddr(e.Listen))
		h2, lo2, hi2, err2 := portRange(firstAddr(o.Listen))
		if err1 == nil && err2 == nil && h1 == h2 && lo1 <= hi2 && lo2 <= hi1 {
			ps.Errorf(p+".listen", "its ports overlap those of entries[%d] (%s)", i, o.Name)
			break
		}
	}
}

// checkPortMapChain checks, across a chain, that some gwproxy learns the
// endpoints a port_map entry maps.
func checkPortMapChain(c *Config, key string, nodes map[string]*Config) []error {
	for _, n := range nodes {
		if n.RegisterEndpoints {
			return nil
		}
	}
	return []error{c.pos.Errorf(key+".kind", "no gwproxy of the chain given has register_endpoints: the port_map entry would have no endpoint to map")}
}

// RegistryPath is the epproxy's registry state file.
func (c *Config) RegistryPath() string {
	if c.RegistryFile != "" {
		return c.RegistryFile
	}
	return filepath.Join(filepath.Dir(c.file), "registry.json")
}

// registryState is the registry file: the endpoints, and the port of
// each in each port_map entry.
type registryState struct {
	Endpoints []stateEndpoint           `json:"endpoints"`
	Ports     map[string]map[string]int `json:"ports"` // entry name -> endpoint address -> port
}

type stateEndpoint struct {
	Addr  string    `json:"addr"`
	Label string    `json:"label"`
	First time.Time `json:"first_seen"`
	Last  time.Time `json:"last_seen"`
}

// loadRegistry reads the registry file; a missing file is an empty
// registry.
func loadRegistry(path string) (registryState, error) {
	st := registryState{Ports: map[string]map[string]int{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return registryState{Ports: map[string]map[string]int{}}, fmt.Errorf("%s: %w", path, err)
	}
	if st.Ports == nil {
		st.Ports = map[string]map[string]int{}
	}
	return st, nil
}

func saveRegistry(path string, st registryState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, filepath.Base(path)+".tmp", append(b, '\n'), nil)
}

// portMap is one port_map entry as the registry keeper runs it.
type portMap struct {
	name   string
	host   string
	lo, hi int
	port   uint16 // at the endpoint
	rules  mux.ACL
	where  string // the entry's file:line, for a default deny's log
}

// registryKeeper runs on the epproxy: it loads the registry into the
// node, and at each change of it binds the port_map ports and writes the
// state file.
type registryKeeper struct {
	node *mux.Node
	path string
	maps []portMap
	log  *logrus.Entry

	mu    sync.Mutex
	ports map[string]map[string]int  // as in registryState
	bound map[string]map[int]string  // entry -> port -> endpoint bound there
	full  map[string]map[string]bool // entry -> endpoints without a port (logged once)
	lns   map[string]map[int]func()  // entry -> port -> removes its listener
	fullN uint64                     // endpoints left without a port, counted once each
	// The file exists (loaded or written): an epproxy that never had an
	// endpoint writes none. saveFailed: the last write failed (logged
	// once until one succeeds).
	haveFile, saveFailed bool

	// The listening sockets a successor took over from its predecessor,
	// by address, while adopt runs: bind takes a port's socket from here
	// instead of binding it again (the predecessor still holds it).
	inherited map[string]net.Listener
}

func newRegistryKeeper(cfg *Config, n *mux.Node, log *logrus.Entry) (*registryKeeper, error) {
	k := &registryKeeper{node: n, path: cfg.RegistryPath(), log: daemon.Component(log.Logger, "registry"),
		bound: map[string]map[int]string{}, full: map[string]map[string]bool{}, lns: map[string]map[int]func(){}}
	for _, e := range cfg.Entries {
		if e.Kind != KindPortMap {
			continue
		}
		h, lo, hi, _ := portRange(firstAddr(e.Listen))
		ae := cfg.addrEntryConfig(e)
		k.maps = append(k.maps, portMap{name: e.Name, host: h, lo: lo, hi: hi, port: uint16(e.EndpointPort), rules: ae.Rules, where: ae.Where})
	}
	st, err := loadRegistry(k.path)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	_, statErr := os.Stat(k.path)
	k.haveFile = statErr == nil
	var eps []mux.Endpoint
	for _, e := range st.Endpoints {
		a, err := netip.ParseAddr(e.Addr)
		if err != nil {
			continue
		}
		eps = append(eps, mux.Endpoint{Addr: a, Label: e.Label, First: e.First, Last: e.Last})
	}
	n.LoadEndpoints(eps)
	k.ports = st.Ports
	if len(eps) > 0 {
		k.log.Infof("registry: %d endpoints loaded from %s", len(eps), k.path)
	}
	return k, nil
}

// run keeps the ports and the file in step with the registry until ctx
// ends; failed binds are tried again every minute.
func (k *registryKeeper) run(ctx context.Context) error {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	k.sync()
	for {
		select {
		case <-ctx.Done():
			k.sync() // the last seen times of the endpoints still announced
			return nil
		case <-k.node.EndpointsChanged():
		case <-tick.C:
		}
		k.sync()
	}
}

// sync assigns ports to new endpoints, frees those of endpoints gone,
// binds what is not bound, and writes the state file.
func (k *registryKeeper) sync() {
	eps := k.node.Endpoints()
	k.mu.Lock()
	defer k.mu.Unlock()
	in := map[string]bool{}
	for _, e := range eps {
		in[e.Addr.String()] = true
	}
	for _, m := range k.maps {
		as := k.ports[m.name]
		if as == nil {
			as = map[string]int{}
			k.ports[m.name] = as
		}
		used := map[int]string{}
		for a, p := range as {
			_, taken := used[p]
			if !in[a] || p < m.lo || p > m.hi || taken {
				delete(as, a) // gone, outside the range now, or a clash in a hand-edited file
				k.unbind(m.name, p)
				continue
			}
			used[p] = a
		}
		next := m.lo
		for _, e := range eps {
			a := e.Addr.String()
			if _, ok := as[a]; ok {
				continue
			}
			for next <= m.hi && used[next] != "" {
				next++
			}
			if next > m.hi {
				if k.full[m.name] == nil {
					k.full[m.name] = map[string]bool{}
				}
				if !k.full[m.name][a] {
					k.full[m.name][a] = true
					k.fullN++
					k.log.WithFields(logrus.Fields{"entry": m.name, "endpoint": a}).
						Warnf("port_map %s is full: all %d ports are taken; endpoint %s has no port", m.name, m.hi-m.lo+1, a)
				}
				continue
			}
			as[a], used[next] = next, a
			delete(k.full[m.name], a)
			k.log.WithFields(logrus.Fields{"entry": m.name, "endpoint": a, "gwproxy": e.Label}).
				Infof("port_map %s: port %d is endpoint %s", m.name, next, a)
		}
		for a, p := range as {
			if k.bound[m.name][p] == a {
				continue
			}
			k.unbind(m.name, p)
			k.bind(m, p, a)
		}
	}
	if len(eps) == 0 && !k.haveFile {
		return
	}
	st := registryState{Ports: k.ports}
	for _, e := range eps {
		st.Endpoints = append(st.Endpoints, stateEndpoint{Addr: e.Addr.String(), Label: e.Label, First: e.First, Last: e.Last})
	}
	if err := saveRegistry(k.path, st); err != nil {
		if !k.saveFailed {
			k.log.WithError(err).Errorf("registry not saved: the endpoints and port_map ports will not survive a restart; set registry_file to a writable place")
		}
		k.saveFailed = true
		return
	}
	if k.saveFailed {
		k.log.Infof("registry saved in %s again", k.path)
	}
	k.haveFile, k.saveFailed = true, false
}

func (k *registryKeeper) bind(m portMap, port int, addr string) {
	hp := net.JoinHostPort(m.host, strconv.Itoa(port))
	ln, ok := k.inherited[hp]
	if ok {
		delete(k.inherited, hp)
	} else {
		var err error
		if ln, err = net.Listen("tcp", hp); err != nil {
			if k.inherited != nil {
				// Taking over: the running instance holds the port;
				// run binds it again once it has handed over.
				k.log.WithError(err).WithField("entry", m.name).Warnf("port_map %s: port %d for endpoint %s not handed over by the running instance; bound once it has handed over", m.name, port, addr)
				return
			}
			k.log.WithError(err).WithField("entry", m.name).Errorf("port_map %s: port %d for endpoint %s not bound; tried again in a minute", m.name, port, addr)
			return
		}
	}
	name := fmt.Sprintf("%s:%d", m.name, port)
	k.node.AddAddrEntry(ln, mux.AddrEntry{Name: name, Kind: mux.EntryPortMap, Host: addr, Port: m.port, Rules: m.rules, Where: m.where})
	if k.bound[m.name] == nil {
		k.bound[m.name], k.lns[m.name] = map[int]string{}, map[int]func(){}
	}
	k.bound[m.name][port] = addr
	k.lns[m.name][port] = func() { k.node.RemoveEntry(name, 0) }
}

func (k *registryKeeper) unbind(entry string, port int) {
	if rm := k.lns[entry][port]; rm != nil {
		rm()
		delete(k.lns[entry], port)
		delete(k.bound[entry], port)
	}
}

// fill adds the ports to a status.
func (k *registryKeeper) fill(st *mux.NodeStatus) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for i := range st.Endpoints {
		e := &st.Endpoints[i]
		for _, m := range k.maps {
			if p, ok := k.ports[m.name][e.Addr]; ok {
				if e.Ports == nil {
					e.Ports = map[string]int{}
				}
				e.Ports[m.name] = p
			}
		}
	}
	st.PortMapFull = k.fullN
}

// portMaps is c's port_map entries.
func portMaps(c *Config) []Entry {
	var out []Entry
	for _, e := range c.Entries {
		if e.Kind == KindPortMap {
			out = append(out, e)
		}
	}
	return out
}

func firstAddr(a Addrs) string {
	if len(a) == 0 {
		return ""
	}
	return a[0]
}
