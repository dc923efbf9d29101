package chain

import (
	"fmt"

	"github.com/relaychain/relaychain/internal/daemon"
	"github.com/relaychain/relaychain/mux"
)

// This file is the configuration of sessions routed by address: the
// networks a node serves, and the entries whose clients name each
// session's destination (socks5, http_connect).

// validateAddrEntry checks an entry of a kind that takes the destination
// from its client; p is its key ("entries[2]").
func (c *Config) validateAddrEntry(ps *daemon.Problems, p string, e Entry) {
	if e.Kind != mux.EntrySOCKS5 && e.Kind != mux.EntryHTTPConnect {
		ps.Errorf(p+".kind", "%q is not a kind of entry: want socks5 or http_connect, or none for a fixed service", e.Kind)
	}
	if e.Service != "" {
		ps.Errorf(p+".service", "a %s entry has no service: its clients name each destination", e.Kind)
	}
	switch {
	case e.Dest == "" && c.kind.Role != mux.RoleRoot:
		ps.Errorf(p+".dest", "missing: on %s, a %s entry sends its sessions to the epproxy, which dials what its serves hold", c.kind.withArticle(), e.Kind)
	case e.Dest == "":
	case mux.CheckLabel(e.Dest) != nil:
		ps.Check(p+".dest", mux.CheckLabel(e.Dest))
	case e.Dest == c.Label && c.Label != "":
		ps.Errorf(p+".dest", "%s is this node itself", e.Dest)
	}
	acl := parseRulesFor(ps, p+".rules", e.Rules, rulesAddrEntry)
	allows := false
	for _, r := range acl {
		allows = allows || r.Allow
	}
	switch {
	case e.Kind != mux.EntrySOCKS5 && e.Kind != mux.EntryHTTPConnect:
	case len(e.Rules) == 0:
		ps.Errorf(p+".rules", "missing: a %s entry denies every destination no rule allows, so without rules it carries nothing; add rules with action allow for the networks its clients may reach", e.Kind)
	case !allows && len(acl) == len(e.Rules):
		ps.Errorf(p+".rules", "no rule allows anything: a %s entry denies by default, so this one carries nothing", e.Kind)
	}
	names := map[string]bool{}
	for j, u := range e.Users {
		q := fmt.Sprintf("%s.users[%d]", p, j)
		switch {
		case u.Name == "" || len(u.Name) > 255:
			ps.Errorf(q+".name", "want a user name of 1 to 255 bytes")
		case names[u.Name]:
			ps.Errorf(q+".name", "user %s is listed twice", u.Name)
		}
		names[u.Name] = true
		switch {
		case u.Password != "" && u.PasswordHash != "":
			ps.Errorf(q+".password_hash", "a user has a password or a password_hash, not both")
		case u.PasswordHash != "":
			if !mux.IsPasswordHash(u.PasswordHash) {
				ps.Errorf(q+".password_hash", "not a bcrypt hash (\"$2a$10$...\"): make one with \"%s chain hash-password\"", c.kind.Name)
			}
		case u.Password == "" || len(u.Password) > 255:
			ps.Errorf(q+".password", "want a password of 1 to 255 bytes, or a password_hash")
		}
	}
}

// validateServes checks the served networks.
func (c *Config) validateServes(ps *daemon.Problems) {
	if len(c.Serves) > 0 && c.kind.Name == EventSink.Name {
		ps.Errorf("serves", "an eventsink serves no networks")
		return
	}
	seen := map[string]string{}
	for i, s := range c.Serves {
		key := fmt.Sprintf("serves[%d]", i)
		n, err := mux.ParseNetwork(s)
		if err != nil {
			ps.Check(key, err)
			continue
		}
		if first, dup := seen[n.String()]; dup {
			ps.Errorf(key, "network %s is listed twice (first at %s)", n, first)
		}
		seen[n.String()] = key
	}
	if len(c.ServesRules) > 0 {
		if len(c.Serves) == 0 {
			ps.Errorf("serves_rules", "this node serves no network (serves): its rules on them would decide nothing")
		}
		parseRulesFor(ps, "serves_rules", c.ServesRules, rulesServes)
	}
}

// addrEntryConfig is the node's form of the entry e of c that takes the
// destination from its client, with its rules and where it is written.
func (c *Config) addrEntryConfig(e Entry) mux.AddrEntry {
	ae := e.addrEntry()
	for i := range c.Entries {
		if c.Entries[i].Name != e.Name {
			continue
		}
		key := fmt.Sprintf("entries[%d]", i)
		ae.Rules = parseRulesFor(&daemon.Problems{Pos: c.pos}, key+".rules", e.Rules, rulesAddrEntry)
		if line := c.pos.Line(key); line > 0 {
			ae.Where = fmt.Sprintf("%s:%d", c.pos.File(), line)
		}
	}
	return ae
}

// servesRules are the node's rules on the networks it serves, with their
// file:line.
func (c *Config) servesRules() mux.ACL {
	if len(c.ServesRules) == 0 {
		return nil
	}
	return parseRulesFor(&daemon.Problems{Pos: c.pos}, "serves_rules", c.ServesRules, rulesServes)
}

// addrEntry is the node's form of an entry that takes the destination
// from its client.
func (e Entry) addrEntry() mux.AddrEntry {
	ae := mux.AddrEntry{Name: e.Name, Kind: e.Kind, Dest: e.Dest}
	for _, u := range e.Users {
		switch {
		case u.PasswordHash != "":
			if ae.PasswordHashes == nil {
				ae.PasswordHashes = map[string]string{}
			}
			ae.PasswordHashes[u.Name] = u.PasswordHash
		default:
			if ae.Users == nil {
				ae.Users = map[string]string{}
			}
			ae.Users[u.Name] = u.Password
		}
	}
	return ae
}

// checkAddrEntryDest checks, across a chain, the destination of an entry
// that takes the destination from its client: a named node must be in
// the chain and serve some network; on the epproxy without one, some node
// must serve a network.
func checkAddrEntryDest(c *Config, key string, e Entry, nodes map[string]*Config) []error {
	if e.Dest == "" {
		for _, n := range nodes {
			if n != c && len(n.Serves) > 0 {
				return nil
			}
		}
		return []error{c.pos.Errorf(key+".kind", "no node of the chain given serves a network: the %s entry has nowhere to send its sessions", e.Kind)}
	}
	dest, ok := nodes[e.Dest]
	switch {
	case !ok:
		return []error{c.pos.Errorf(key+".dest", "%s has no configuration in the chain given", e.Dest)}
	case len(dest.Serves) == 0:
		return []error{c.pos.Errorf(key+".dest", "%s (%s) serves no network: every destination would be refused there", e.Dest, dest.file)}
	}
	return nil
}

// checkServedTies reports two nodes of the chain that serve the same
// network as specifically: a destination in it would be refused (a
// configuration error the root logs too).
func (s *Set) checkServedTies() []error {
	type served struct {
		c   *Config
		key string
		n   mux.Network
	}
	var all []served
	for _, c := range s.Nodes {
		for i, t := range c.Serves {
			if n, err := mux.ParseNetwork(t); err == nil {
				all = append(all, served{c, fmt.Sprintf("serves[%d]", i), n})
			}
		}
	}
	var errs []error
	for i := range all {
		for j := 0; j < i; j++ {
			a, b := all[j], all[i]
			if a.c.Label != b.c.Label && a.n.Ties(b.n) {
				errs = append(errs, b.c.pos.Errorf(b.key, "%s also serves %s, as specifically (%s at %s): destinations in it would be refused; make one of them more specific",
					a.c.Label, a.n, a.c.file, a.key))
			}
		}
	}
	return errs
}
