package chain

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/relaychain/relaychain/internal/atomicfile"
	"github.com/relaychain/relaychain/internal/daemon"
)

// This file is the endpoint registry's configuration and, on the
// epproxy, its state file and the port_map entries: ports bound each to
// one endpoint of the registry, for clients that cannot name a
// destination. The registry keeper (registry_keeper.go) runs them.

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
