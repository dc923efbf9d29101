package mux

import (
	"net/netip"
	"sort"
	"time"

	"github.com/sirupsen/logrus"
)

// This file is the root's book of the endpoint registry (registry.go):
// the host routes announced below it, recorded as they come and go, and
// the registry as the daemon reads it, keeps in its file and loads back.

// bookNetsLocked records, on the root, the host routes announced and
// withdrawn. A host route in a network another node is configured to
// serve is logged: the host route, more specific, wins. The caller holds
// the routing table's lock.
func (n *Node) bookNetsLocked(up, down []NetAd) {
	r := n.reg
	now := time.Now()
	changed := false
	r.bookMu.Lock()
	for _, ad := range up {
		if !isEndpointAd(ad) {
			continue
		}
		nw, err := parseAdNetwork(ad.Network)
		if err != nil {
			continue
		}
		a := nw.Prefix.Addr()
		e := r.book[a]
		if e == nil {
			e = &Endpoint{Addr: a, First: now}
			r.book[a] = e
		}
		e.Label, e.Last, e.Active = ad.Owner, now, true
		changed = true
		if o, cnet := n.table.configuredOwnerLocked(a); o != "" && o != ad.Owner {
			n.table.log.WithFields(logrus.Fields{"endpoint": a.String(), "l": ad.Owner, "network": cnet}).
				Warnf("endpoint %s registered by %s lies in network %s configured for %s: downcalls to it go to %s, the host route being more specific", a, ad.Owner, cnet, o, ad.Owner)
		}
	}
	for _, ad := range down {
		if !isEndpointAd(ad) {
			continue
		}
		nw, err := parseAdNetwork(ad.Network)
		if err != nil {
			continue
		}
		if e := r.book[nw.Prefix.Addr()]; e != nil && e.Label == ad.Owner {
			e.Last, e.Active = now, false
			changed = true
		}
	}
	r.bookMu.Unlock()
	if changed {
		r.signal()
	}
}

// configuredOwnerLocked is the owner of the most specific configured
// prefix (not a host route) that holds a, on every port.
func (t *routingTable) configuredOwnerLocked(a netip.Addr) (owner, network string) {
	key := lenKey(netip.PrefixFrom(a, 0))
	for bits := a.BitLen(); bits >= 0; bits-- {
		if t.nets.lengths[bits+key] == 0 {
			continue
		}
		p, _ := a.Prefix(bits)
		for _, e := range t.nets.prefixes[p] {
			if !e.net.Endpoint {
				return e.ad.Owner, e.ad.Network
			}
		}
	}
	return "", ""
}

// Endpoints returns the endpoint registry, sorted by address: on the
// root, the book of the host routes announced below it (and loaded by
// LoadEndpoints); elsewhere, the endpoints this node learnt.
func (n *Node) Endpoints() []Endpoint {
	r := n.reg
	var out []Endpoint
	if r.root {
		now := time.Now()
		r.bookMu.Lock()
		for _, e := range r.book {
			c := *e
			if c.Active { // announced: seen as of now
				c.Last = now
			}
			out = append(out, c)
		}
		r.bookMu.Unlock()
	}
	if !r.root || len(out) == 0 {
		r.ownMu.Lock()
		for _, e := range r.own {
			out = append(out, *e)
		}
		r.ownMu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr.Less(out[j].Addr) })
	return out
}

// LoadEndpoints puts endpoints kept from an earlier run into the root's
// book, not active until their host routes are announced again. Before
// Serve.
func (n *Node) LoadEndpoints(eps []Endpoint) {
	r := n.reg
	r.bookMu.Lock()
	defer r.bookMu.Unlock()
	for _, e := range eps {
		if !e.Addr.IsValid() || CheckLabel(e.Label) != nil {
			continue
		}
		e := e
		e.Addr, e.Active = e.Addr.Unmap(), false
		r.book[e.Addr] = &e
	}
}

// LoadOwnEndpoints puts the endpoints a node that learns them had learnt
// in an earlier run back in force, with their first and last seen times:
// their host routes are announced again at once, and each expires
// endpoint_ttl after it was last seen, as if the node had not stopped.
// Endpoints of another node, expired, or over max_endpoints are left
// out. Before Serve; it returns how many it took.
func (n *Node) LoadOwnEndpoints(eps []Endpoint) int {
	r := n.reg
	if !r.learn {
		return 0
	}
	now := time.Now()
	r.ownMu.Lock()
	defer r.ownMu.Unlock()
	took := 0
	for _, e := range eps {
		a := e.Addr.Unmap()
		if !a.IsValid() || e.Label != n.cfg.Label || now.Sub(e.Last) > r.ttl || r.own[a] != nil || len(r.own) >= r.max {
			continue
		}
		r.own[a] = &Endpoint{Addr: a, Label: n.cfg.Label, First: e.First, Last: e.Last, Active: true}
		ad, nw := endpointAd(n.cfg.Label, a)
		n.table.setOwnEndpoint(ad, nw, true)
		took++
	}
	return took
}

// EndpointsChanged receives a value when the root's book, or the
// endpoints this node learns, have changed since it was last received.
func (n *Node) EndpointsChanged() <-chan struct{} { return n.reg.changed }

// EndpointsRefused is how many endpoints were not learnt (this node's
// cap reached) and how many host routes were refused from the children
// (the cap of one link reached).
func (n *Node) EndpointsRefused() (learnt, announced uint64) {
	n.reg.ownMu.Lock()
	learnt = n.reg.full
	n.reg.ownMu.Unlock()
	n.table.mu.Lock()
	announced = n.table.refusedEndpoints
	n.table.mu.Unlock()
	return learnt, announced
}

func (n *Node) endpointStatus() []EndpointStatus {
	eps := n.Endpoints()
	if len(eps) == 0 {
		return nil
	}
	out := make([]EndpointStatus, len(eps))
	for i, e := range eps {
		out[i] = EndpointStatus{Addr: e.Addr.String(), Label: e.Label, First: e.First, Last: e.Last, Active: e.Active}
	}
	return out
}

func (n *Node) endpointsRefused() uint64 {
	learnt, announced := n.EndpointsRefused()
	return learnt + announced
}
