package mux

import (
	"fmt"
	"sort"
	"strings"

	"github.com/sirupsen/logrus"
)

// This file is the networks a parent accepts from each child
// (LinkConfig.AcceptNetworks, PROTOCOL.md section 3, "Accepted
// networks"): a network, a pattern or a host route announced through a
// child link is taken only when it lies within what the link accepts, so
// that a child cannot claim a part of another site's networks.

// AnyNetwork, as the only entry of LinkConfig.AcceptNetworks, accepts
// every network the child announces: the explicit opt-out of the check.
const AnyNetwork = "any"

// acceptSet is what one child link accepts: every network, or those that
// lie within one of nets.
type acceptSet struct {
	any  bool
	nets []Network
	text string // for the log lines
}

// parseAccept reads a link's AcceptNetworks. Nil or empty accepts none.
func parseAccept(list []string) (*acceptSet, error) {
	s := &acceptSet{}
	var errs []string
	for i, x := range list {
		if x == AnyNetwork {
			if len(list) != 1 {
				errs = append(errs, fmt.Sprintf("accept networks %d: %q must be the only entry", i, AnyNetwork))
			}
			s.any = true
			continue
		}
		nw, err := ParseNetwork(x)
		if err != nil {
			errs = append(errs, fmt.Sprintf("accept networks %d: %v", i, err))
			continue
		}
		s.nets = append(s.nets, nw)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	switch {
	case s.any:
		s.text = AnyNetwork
	default:
		parts := make([]string, len(s.nets))
		for i, nw := range s.nets {
			parts[i] = nw.String()
		}
		s.text = strings.Join(parts, ",")
	}
	return s, nil
}

// allows reports whether nw lies within the set.
func (s *acceptSet) allows(nw Network) bool {
	if s == nil {
		return false
	}
	if s.any {
		return true
	}
	for _, a := range s.nets {
		if nw.Within(a) {
			return true
		}
	}
	return false
}

// Within reports whether every destination of n is a destination of a:
// a prefix inside a's prefix, a name equal to a's name or under a's
// pattern, a pattern equal to or under a's pattern, on ports all inside
// a's ports. A host route (every port) lies within a prefix of every port
// that holds its address. Names and prefixes never hold each other.
func (n Network) Within(a Network) bool {
	if a.PortLo != 0 && (n.PortLo == 0 || n.PortLo < a.PortLo || n.PortHi > a.PortHi) {
		return false
	}
	switch {
	case n.Prefix.IsValid() || a.Prefix.IsValid():
		return n.Prefix.IsValid() && a.Prefix.IsValid() &&
			n.Prefix.Addr().Is4() == a.Prefix.Addr().Is4() &&
			a.Prefix.Bits() <= n.Prefix.Bits() && a.Prefix.Contains(n.Prefix.Addr())
	case !a.Pattern:
		return !n.Pattern && n.Host == a.Host
	default: // a pattern holds the names and patterns under its suffix
		return n.Host == a.Host && n.Pattern || strings.HasSuffix(n.Host, "."+a.Host)
	}
}

// setAccept puts in force what each child link of links accepts. A child
// whose set changed keeps only the networks within its new set; the
// returned children are those whose set changed, to be asked for their
// whole announcement again (what was refused before may be taken now).
// The sets of children no longer configured stay, so that a removed link
// that still drains cannot announce more than it could.
func (t *routingTable) setAccept(links []LinkConfig) (changed []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.accept == nil {
		t.accept = map[string]*acceptSet{}
	}
	for _, lc := range links {
		if lc.Parent {
			continue
		}
		s, err := parseAccept(lc.AcceptNetworks)
		if err != nil { // Validate reported it; fail closed
			s = &acceptSet{}
		}
		old, had := t.accept[lc.Peer]
		t.accept[lc.Peer] = s
		if had && old.text == s.text && old.any == s.any {
			continue
		}
		if had {
			changed = append(changed, lc.Peer)
		}
		var down []NetAd
		for a := range t.nets.byChild[lc.Peer] {
			if nw, err := parseAdNetwork(a.Network); err == nil && s.allows(nw) {
				continue
			}
			if t.nets.remove(lc.Peer, a) {
				down = append(down, a)
			}
		}
		if len(down) > 0 {
			t.log.WithFields(logrus.Fields{"l": lc.Peer, "accept": s.text}).Warnf("dropped %d networks of child %s: outside its accept_networks now", len(down), lc.Peer)
		}
		t.netsChangedLocked(lc.Peer, nil, down)
	}
	sort.Strings(changed)
	return changed
}

// acceptsLocked decides whether the network nw of ad, announced by child,
// lies within what the child's link accepts; when not, it says why.
func (t *routingTable) acceptsLocked(child string, nw Network) (ok bool, why string) {
	s := t.accept[child]
	switch {
	case s.allows(nw):
		return true, ""
	case s == nil || !s.any && len(s.nets) == 0:
		return false, fmt.Sprintf("the link to %s has no accept_networks: add the networks %s may claim to it (or accept_networks: any)", child, child)
	}
	return false, fmt.Sprintf("outside the link's accept_networks (%s)", s.text)
}

// refuseNetLocked logs and counts a network announced by child that its
// link does not accept: flood-proof, as the ties.
func (t *routingTable) refuseNetLocked(child string, a NetAd, why string) {
	t.refusedNets++
	t.acceptLog.note(child, t.log.WithFields(logrus.Fields{"l": child, "owner": a.Owner, "network": a.Network}),
		fmt.Sprintf("refused network %s of %s announced by child %s: %s", a.Network, a.Owner, child, why))
}

// dropOwnedLocked forgets the networks that child announced for the
// labels gone, which it no longer announces: a label's networks go with
// it. Another child that announces them keeps them in the table.
func (t *routingTable) dropOwnedLocked(child string, gone []string) {
	var down []NetAd
	for _, owner := range gone {
		for a := range t.nets.ownedBy(child, owner) {
			if t.nets.remove(child, a) {
				down = append(down, a)
			}
		}
	}
	t.netsChangedLocked(child, nil, down)
}

// RefusedNetworks is how many networks announced by the children this
// node refused for lying outside their link's AcceptNetworks.
func (n *Node) RefusedNetworks() uint64 {
	n.table.mu.Lock()
	defer n.table.mu.Unlock()
	return n.table.refusedNets
}

// initAccept puts in force what the child links accept, and says at
// level 3 which child links accept no network.
func (n *Node) initAccept(links []LinkConfig) {
	n.table.setAccept(links)
	for _, lc := range links {
		if !lc.Parent && len(lc.AcceptNetworks) == 0 {
			n.log.WithFields(logrus.Fields{"component": "routing", "l": lc.Peer}).
				Infof("the link to child %s accepts no networks: the networks and endpoints it announces are refused; list those it may claim in the link's accept_networks", lc.Peer)
		}
	}
}

// reconfigureAccept puts in force what the child links of links accept,
// networks and labels: a child whose sets changed loses at once what lies
// outside them and is asked once with WHO for its whole announcement, from
// which what is now accepted is taken. The link and its sessions stay.
func (n *Node) reconfigureAccept(links []LinkConfig) []string {
	nets, labels := n.table.setAccept(links), n.table.setAcceptLabels(links)
	var lines []string
	ask := map[string]bool{}
	note := func(changed []string, what, none string, text func(peer string) string) {
		for _, peer := range changed {
			n.table.mu.Lock()
			t := text(peer)
			n.table.mu.Unlock()
			if t == "" {
				t = none
			}
			lines = append(lines, fmt.Sprintf("%s accepted from %s changed (%s)", what, peer, t))
			ask[peer] = true
		}
	}
	note(nets, "networks", "none", func(peer string) string { return n.table.accept[peer].text })
	note(labels, "labels", "its own only", func(peer string) string { return n.table.acceptLabels[peer].text })
	for peer := range ask {
		n.mu.Lock()
		l := n.links[peer]
		n.mu.Unlock()
		if l == nil || l.cfg.Parent {
			continue
		}
		n.spawn(func() {
			if err := l.send(ctrlMsg{Type: ctrlWho}); err != nil {
				l.log.WithError(err).Warn("WHO after a change of what the link accepts not sent")
			}
		})
	}
	return lines
}
