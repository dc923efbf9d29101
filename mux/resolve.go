package mux

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/sirupsen/logrus"
)

// This file is the serving node's resolution of a destination given by
// name (PROTOCOL.md section 4, "Address form"): the name is resolved
// there within the dial timeout, and every address it resolves to is
// decided by the node's rules on its networks before it is dialled, so
// that a name cannot lead the node where its rules would not (DNS
// rebinding: a name that resolves to the node's own loopback, its admin
// port, another network).

// Resolver looks up the addresses of a host name; *net.Resolver is one.
// network is "ip".
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// isIP reports whether host is an IP address (the address form carries
// no zone), not a name.
func isIP(host string) bool {
	_, err := netip.ParseAddr(host)
	return err == nil
}

// resolver is the node's Resolver: Config.Resolver, else the system's.
func (n *Node) resolver() Resolver {
	if n.cfg.Resolver != nil {
		return n.cfg.Resolver
	}
	return net.DefaultResolver
}

// specialAddr names the kind of a that a resolved name may not reach
// unless a rule allows it by its nets: loopback, link-local, unspecified
// or multicast; "" for any other address.
func specialAddr(a netip.Addr) string {
	switch {
	case a.IsLoopback():
		return "loopback"
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLinkLocalUnicast():
		return "link-local"
	case a.IsMulticast():
		return "multicast"
	}
	return ""
}

// resolveDest resolves h.DestHost, a name in the networks this node
// serves, within the dial timeout, and returns the HOST:PORT of each
// address it resolves to that the node may dial, in the resolver's order.
// Each address is decided by the node's rules on its networks
// (Config.ServesRules, first match) over the origin, the name, the
// address and the port: a rule's hosts match the name, its nets the
// address. An address the deciding rule denies is refused; a loopback,
// link-local, unspecified or multicast address is refused too unless the
// deciding rule allows it and its nets hold the address (a rule for the
// name alone does not, nor does the default). When no address is left
// the session is denied: the denial names the name, the first refused
// address and the rule (or the default), is logged at level 3,
// flood-proof, and counted (Stats.DeniedByRules and
// Stats.DeniedResolved). A name that does not resolve is StatusUnresolved,
// a lookup that timed out StatusTimeout. A name that a rule denies
// whatever it resolves to (the first rule that matches the name, with no
// rule with nets before it) is denied without a lookup.
func (n *Node) resolveDest(h Header, log *logrus.Entry) ([]string, error) {
	name := h.DestHost
	rules := n.cfg.ServesRules
	// A rule that denies the name whatever its address decides before any
	// lookup: a rule on the name preceded by no rule on addresses.
	req := ACLRequest{Origin: h.Origin, Host: name, Port: h.DestPort, Dest: n.cfg.Label}
	if allow, rule := rules.Decide(req, true); !allow && rule >= 0 && !anyNets(rules[:rule]) {
		return nil, n.denied(rules, rule, fmt.Sprintf("destination %s for %s", hostPort(name, h.DestPort), h.Origin), h.Origin, log)
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.tuning().DialTimeout)
	defer cancel()
	ips, err := n.resolver().LookupNetIP(ctx, "ip", name)
	if err == nil && len(ips) == 0 {
		err = &net.DNSError{Err: "no address", Name: name, IsNotFound: true}
	}
	if err != nil {
		code := StatusUnresolved
		var dnsErr *net.DNSError
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &dnsErr) && dnsErr.IsTimeout) {
			code = StatusTimeout
		}
		se := &StatusError{Code: code, Node: n.cfg.Label, Reason: fmt.Sprintf("resolve %s: %v", name, err)}
		log.WithField("status", code.String()).Infof("refused: %s", se.Reason)
		return nil, se
	}
	var ok []string
	first := -2 // the rule that decided on the first address refused; -1: the default
	var firstAddr netip.Addr
	var firstKind string
	for _, ip := range ips {
		ip = ip.Unmap().WithZone("")
		req.Resolved = ip
		allow, rule := rules.Decide(req, true)
		kind := specialAddr(ip)
		if allow && kind != "" && (rule < 0 || !matchPrefixes(rules[rule].Nets, ip)) {
			allow = false
		} else {
			kind = ""
		}
		if allow {
			ok = append(ok, hostPort(ip.String(), h.DestPort))
			continue
		}
		log.WithFields(logrus.Fields{"name": name, "addr": ip.String()}).Debugf("resolved address refused by %s", rules.describe(rule))
		if first == -2 {
			first, firstAddr, firstKind = rule, ip, kind
		}
	}
	if len(ok) > 0 {
		return ok, nil
	}
	n.resolveDenied.Add(1)
	what := fmt.Sprintf("destination %s (resolved to %s) for %s", hostPort(name, h.DestPort), firstAddr, h.Origin)
	log = log.WithFields(logrus.Fields{"name": name, "addr": firstAddr.String()})
	if firstKind == "" {
		return nil, n.denied(rules, first, what, h.Origin, log)
	}
	matched := ""
	if first >= 0 {
		matched = "; " + rules.describe(first) + ", which decided, does not"
	}
	reason := fmt.Sprintf("%s: denied by default: %s is a %s address (only a rule of serves_rules whose nets hold it allows it%s)", what, firstAddr, firstKind, matched)
	return nil, n.deny(reason, h.Origin, log.WithField("rule", first))
}

// anyNets reports whether a rule of acl has nets: one that may match a
// name by the address it resolves to.
func anyNets(acl ACL) bool {
	for _, r := range acl {
		if len(r.Nets) > 0 {
			return true
		}
	}
	return false
}
