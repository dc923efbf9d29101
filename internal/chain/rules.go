package chain

import (
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/relaychain/relaychain/internal/daemon"
	"github.com/relaychain/relaychain/mux"
)

// This file holds the configuration of first-match rules (rules: on
// services and entries), source addresses (source: on dialled links and
// services) and listen keys that take a list (a multihomed host).

// Rule is one first-match rule as written under rules:. Every condition
// set must match; a condition with several values matches when one does;
// the first rule that matches decides.
type Rule struct {
	// Action is allow or deny. Required.
	Action string `yaml:"action"`
	// Origins are globs over the origin label (the node whose entry opened
	// the session): "gwp-*", "gwp-site-?".
	Origins []string `yaml:"origins"`
	// Nets are the destination addresses as CIDR prefixes or single
	// addresses; Hosts globs over the destination host name
	// ("*.site-a.example"). A service's destination is each address it
	// dials. Not for a static entry, whose destination is a node.
	Nets  []string `yaml:"nets"`
	Hosts []string `yaml:"hosts"`
	// Ports are destination ports or ranges: 22, "8000-8999".
	Ports []string `yaml:"ports"`
	// Sources are the client's addresses, as CIDR prefixes or single
	// addresses. Entries only.
	Sources []string `yaml:"sources"`
	// Dests and Services are globs over the destination node's label and
	// the service name.
	Dests    []string `yaml:"dests"`
	Services []string `yaml:"services"`
}

// Addrs is a listen key: one HOST:PORT, or a list of them for a host with
// several addresses.
type Addrs []string

// UnmarshalYAML reads "listen: 10.0.0.1:7000" or "listen: [10.0.0.1:7000,
// 192.168.1.1:7000]". Anything else is a *yaml.TypeError, so the loader
// names its line and key.
func (a *Addrs) UnmarshalYAML(n *yaml.Node) error {
	switch {
	case n.Kind == yaml.ScalarNode && n.Tag == "!!null":
		*a = nil
		return nil
	case n.Kind == yaml.ScalarNode:
		*a = Addrs{n.Value}
		return nil
	case n.Kind == yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		*a = l
		return nil
	}
	// The text yaml.v3 itself writes for a value of the wrong type.
	return &yaml.TypeError{Errors: []string{
		fmt.Sprintf("line %d: cannot unmarshal %s into chain.Addrs", n.Line, n.ShortTag()),
	}}
}

// String is the addresses joined by commas, for messages.
func (a Addrs) String() string { return strings.Join(a, ",") }

// first is the first address, or "".
func (a Addrs) first() string {
	if len(a) == 0 {
		return ""
	}
	return a[0]
}

// addrPath is the key path of the i-th address of the listen key at base:
// "entries[0].listen[1]" when written as a list, base itself when written
// as one string.
func addrPath(pos *daemon.Positions, base string, i int) string {
	if p := fmt.Sprintf("%s[%d]", base, i); pos.Has(p) {
		return p
	}
	return base
}

// checkListens checks the addresses of a listen key and returns the uses
// to check for clashes.
func checkListens(ps *daemon.Problems, base string, addrs Addrs, link bool) []listenUse {
	var out []listenUse
	for i, a := range addrs {
		p := addrPath(ps.Pos, base, i)
		if err := daemon.CheckListenAddr(a, false); err != nil {
			ps.Check(p, err)
			continue
		}
		if slices.Contains(addrs[:i], a) {
			ps.Errorf(p, "%s is listed twice", a)
			continue
		}
		out = append(out, listenUse{addr: a, path: p, link: link})
	}
	return out
}

// parseRules checks the rules at key (services[0].rules) and returns them
// for mux, each with its file:line. forEntry: the rules of a static entry
// (sources, no destination address); else a service's (no sources).
func parseRules(ps *daemon.Problems, key string, rules []Rule, forEntry bool) mux.ACL {
	if forEntry {
		return parseRulesFor(ps, key, rules, rulesStaticEntry)
	}
	return parseRulesFor(ps, key, rules, rulesService)
}

// Where rules are written, for the conditions each place can match.
const (
	rulesService     = iota // a service's: no sources
	rulesStaticEntry        // a static entry's: sources, no destination address
	rulesAddrEntry          // a socks5 or http_connect entry's: no services
	rulesServes             // serves_rules: no sources, services or dests
)

// parseRulesFor is parseRules for the rules of use.
func parseRulesFor(ps *daemon.Problems, key string, rules []Rule, use int) mux.ACL {
	forEntry := use == rulesStaticEntry
	var acl mux.ACL
	lines := make([]int, 0, len(rules))
	for i, r := range rules {
		p := fmt.Sprintf("%s[%d]", key, i)
		where := ""
		line := ps.Pos.Line(p)
		if line > 0 {
			where = fmt.Sprintf("%s:%d", ps.Pos.File(), line)
		}
		if forEntry && (len(r.Nets) > 0 || len(r.Hosts) > 0 || len(r.Ports) > 0) {
			ps.Errorf(p, "a static entry's destination is a node and a service: match it with dests and services, not nets, hosts or ports")
		}
		switch {
		case use == rulesService && len(r.Sources) > 0:
			ps.Errorf(p+".sources", "a service sees no client address: sources are for entries")
		case use == rulesServes && len(r.Sources) > 0:
			ps.Errorf(p+".sources", "a served network sees no client address: sources are for entries")
		}
		if use == rulesAddrEntry && len(r.Services) > 0 {
			ps.Errorf(p+".services", "a socks5 or http_connect entry has no service: match its destinations with nets, hosts, ports and dests")
		}
		if use == rulesServes && (len(r.Services) > 0 || len(r.Dests) > 0) {
			ps.Errorf(p, "serves_rules decide on destinations this node dials: match them with origins, nets, hosts and ports, not services or dests")
		}
		ar, err := mux.ParseACLRule(mux.ACLRuleSpec{Action: r.Action, Origins: r.Origins, Nets: r.Nets, Hosts: r.Hosts,
			Ports: r.Ports, Sources: r.Sources, Dests: r.Dests, Services: r.Services, Where: where})
		if err != nil {
			ps.Errorf(p, "%v", err)
			continue
		}
		acl = append(acl, ar)
		lines = append(lines, i)
	}
	for _, sh := range acl.Shadowed() {
		earlier, later := lines[sh[0]], lines[sh[1]]
		ps.Errorf(fmt.Sprintf("%s[%d]", key, later), "can never match: %s[%d] (line %d) matches everything it does",
			key, earlier, ps.Pos.Line(fmt.Sprintf("%s[%d]", key, earlier)))
	}
	return acl
}

// checkSource checks a source key. A pinned port is returned as a use of
// the port, for clash checks: with this node's listeners (the bind would
// fail) and with another pinned source (two dials to one destination
// would take the same address pair).
func checkSource(ps *daemon.Problems, key, source string) []listenUse {
	if source == "" {
		return nil
	}
	ap, err := mux.ParseSource(source)
	if err != nil {
		ps.Errorf(key, "%v", err)
		return nil
	}
	if ap.Port() == 0 {
		return nil
	}
	return []listenUse{{addr: ap.String(), path: key}}
}

// rules converts rules that Validate accepted, with their file:line.
func (c *Config) rules(key string, rules []Rule, forEntry bool) mux.ACL {
	return parseRules(&daemon.Problems{Pos: c.pos}, key, rules, forEntry)
}

// entryConfig is the mux configuration of the entry e of c, its rules
// with their file:line.
func (c *Config) entryConfig(e Entry) mux.EntryConfig {
	ec := mux.EntryConfig{Name: e.Name, Dest: e.Dest, Service: e.Service}
	for i := range c.Entries {
		if c.Entries[i].Name == e.Name {
			ec.Rules = c.rules(fmt.Sprintf("entries[%d].rules", i), e.Rules, true)
		}
	}
	return ec
}
