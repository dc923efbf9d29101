package mux

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// This file is the endpoint registry (PROTOCOL.md section 3, "Endpoint
// registry"). A node with Config.RegisterEndpoints learns the source
// address of every client of its entries (the endpoints that make upcalls
// through it) and announces each as a host route, a network "@ADDRESS",
// until it has not been seen for Config.EndpointTTL. The root keeps a
// book of the host routes announced below it, with when each was first
// and last seen; the daemon persists it and maps ports to it.

// Defaults of the registry.
const (
	DefaultEndpointTTL  = 24 * time.Hour
	DefaultMaxEndpoints = 20000
)

// Endpoint is one endpoint of the registry.
type Endpoint struct {
	Addr  netip.Addr
	Label string // the node that serves it: the one that learnt it
	First time.Time
	Last  time.Time
	// Active: its host route is announced now. On the node that learnt
	// it, always.
	Active bool
}

type endpointReg struct {
	learn bool // Config.RegisterEndpoints
	root  bool // keeps the book
	ttl   time.Duration
	max   int

	ownMu sync.Mutex // taken before the routing table's lock
	own   map[netip.Addr]*Endpoint
	full  uint64 // addresses not learnt: the cap reached

	bookMu  sync.Mutex // taken inside the routing table's lock
	book    map[netip.Addr]*Endpoint
	changed chan struct{} // one pending signal: the book changed
}

func (n *Node) initRegistry() {
	r := &endpointReg{
		learn:   n.cfg.RegisterEndpoints,
		root:    n.cfg.Role == RoleRoot,
		ttl:     n.cfg.EndpointTTL,
		max:     n.cfg.MaxEndpoints,
		own:     map[netip.Addr]*Endpoint{},
		book:    map[netip.Addr]*Endpoint{},
		changed: make(chan struct{}, 1),
	}
	if r.ttl <= 0 {
		r.ttl = DefaultEndpointTTL
	}
	if r.max <= 0 {
		r.max = DefaultMaxEndpoints
	}
	n.reg = r
	n.table.maxEndpointsPerLink = r.max
	if r.root {
		n.table.root = true
		n.table.onNets = n.bookNetsLocked
	}
}

// parseAdNetwork reads a network as announcements carry it: the text
// form of ParseNetwork, or a host route of the registry ("@10.20.0.5").
func parseAdNetwork(s string) (Network, error) {
	if rest, ok := strings.CutPrefix(s, "@"); ok {
		a, err := netip.ParseAddr(rest)
		if err != nil || a.Zone() != "" {
			return Network{}, fmt.Errorf("endpoint %q: want @ and an IP address without zone", s)
		}
		a = a.Unmap()
		return Network{Prefix: netip.PrefixFrom(a, a.BitLen()), Endpoint: true}, nil
	}
	return ParseNetwork(s)
}

func isEndpointAd(a NetAd) bool { return strings.HasPrefix(a.Network, "@") }

func endpointAd(owner string, a netip.Addr) (NetAd, Network) {
	nw := Network{Prefix: netip.PrefixFrom(a, a.BitLen()), Endpoint: true}
	return NetAd{Owner: owner, Network: nw.String()}, nw
}

// clientAddr is the IP address of a client, unmapped; false for one that
// is not an IP address.
func clientAddr(ra net.Addr) (netip.Addr, bool) {
	tcp, ok := ra.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	a, ok := netip.AddrFromSlice(tcp.IP)
	if !ok || a.IsUnspecified() {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// noteClient registers the client of an entry as an endpoint this node
// serves, on a node that learns its endpoints. conn's remote address is
// the client's; a client on this node's own host, that connects from the
// address it connects to, is not an endpoint: its host route would open
// this host to downcalls.
func (n *Node) noteClient(conn net.Conn) {
	r := n.reg
	if !r.learn {
		return
	}
	a, ok := clientAddr(conn.RemoteAddr())
	if !ok {
		return
	}
	if local, ok := clientAddr(conn.LocalAddr()); ok && local == a {
		return
	}
	now := time.Now()
	r.ownMu.Lock()
	defer r.ownMu.Unlock()
	if e := r.own[a]; e != nil {
		e.Last = now
		return
	}
	log := n.log.WithFields(logrus.Fields{"component": "registry", "endpoint": a.String()})
	if len(r.own) >= r.max {
		r.full++
		if r.full&(r.full-1) == 0 { // 1, 2, 4, ...: flood-proof
			log.Warnf("endpoint not registered: %d endpoints already, the most this node learns (%d refused so far)", len(r.own), r.full)
		}
		return
	}
	r.own[a] = &Endpoint{Addr: a, Label: n.cfg.Label, First: now, Last: now, Active: true}
	ad, nw := endpointAd(n.cfg.Label, a)
	n.table.setOwnEndpoint(ad, nw, true)
	log.Info("endpoint registered")
	r.signal()
}

// servesEndpoint reports whether a is an endpoint this node learnt: it
// dials it for sessions of the address form, on any port.
func (n *Node) servesEndpoint(host string) bool {
	r := n.reg
	if !r.learn {
		return false
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	r.ownMu.Lock()
	defer r.ownMu.Unlock()
	_, ok := r.own[a.Unmap()]
	return ok
}

// setOwnEndpoint adds or removes a host route of this node's own.
func (t *routingTable) setOwnEndpoint(ad NetAd, nw Network, on bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if on {
		if fresh, _ := t.nets.add("", ad, nw); fresh {
			t.netsChangedLocked("", []NetAd{ad}, nil)
		}
		return
	}
	if t.nets.remove("", ad) {
		t.netsChangedLocked("", nil, []NetAd{ad})
	}
}

// expireEndpointsLoop forgets the endpoints not seen for the TTL, until
// the node stops accepting.
func (n *Node) expireEndpointsLoop() {
	r := n.reg
	if !r.learn && !r.root {
		return
	}
	tick := time.NewTicker(min(max(r.ttl/8, 10*time.Millisecond), time.Minute))
	defer tick.Stop()
	for {
		select {
		case <-n.acceptCtx.Done():
			return
		case now := <-tick.C:
			n.expireEndpoints(now)
		}
	}
}

// expireEndpoints forgets what was last seen more than the TTL before
// now: this node's own endpoints (their host routes are withdrawn) and,
// on the root, the endpoints of the book no longer announced.
func (n *Node) expireEndpoints(now time.Time) {
	r := n.reg
	log := n.log.WithField("component", "registry")
	r.ownMu.Lock()
	expired := 0
	for a, e := range r.own {
		if now.Sub(e.Last) > r.ttl {
			delete(r.own, a)
			expired++
			ad, nw := endpointAd(n.cfg.Label, a)
			n.table.setOwnEndpoint(ad, nw, false)
			log.WithField("endpoint", a.String()).Infof("endpoint expired: not seen since %s", e.Last.UTC().Format(time.RFC3339))
		}
	}
	r.ownMu.Unlock()
	if expired > 0 {
		r.signal()
	}
	r.bookMu.Lock()
	dropped := 0
	for a, e := range r.book {
		if !e.Active && now.Sub(e.Last) > r.ttl {
			delete(r.book, a)
			dropped++
		}
	}
	r.bookMu.Unlock()
	if dropped > 0 {
		log.Infof("%d endpoints left the registry: not announced for %s", dropped, r.ttl)
		r.signal()
	}
}

func (r *endpointReg) signal() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}
