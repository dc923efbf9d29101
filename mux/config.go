package mux

import (
	"context"
	"fmt"
	"net"
	"time"
)

// Role is what a node is in the tree.
type Role uint8

const (
	RoleRoot  Role = 1 // the epproxy: no parent
	RoleRelay Role = 2 // forwards between its parent and its children
	RoleLeaf  Role = 3 // gwproxy, eventsink: normally no children (a gwproxy may serve eventsinks beside it)
)

func (r Role) String() string {
	switch r {
	case RoleRoot:
		return "root"
	case RoleRelay:
		return "relay"
	case RoleLeaf:
		return "leaf"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// LinkConfig is one configured neighbour. Exactly one of Dial and Listen is
// set: which side opens the TCP connection is independent of which side is
// the parent, so that each firewall needs one rule in one direction.
// Several links may share one Listen address; the peer's hello label picks
// the link.
type LinkConfig struct {
	Peer   string // the neighbour's label
	Parent bool   // true: the neighbour is this node's parent
	Dial   string // host:port to dial, or ""
	Listen string // host:port to listen on, or ""
	// Plaintext carries the link over plain TCP, without TLS. Only for an
	// operator's explicit insecure_plaintext: true; logged as a warning.
	Plaintext bool
	// Pins, when set, accept the peer only when the SHA-256 of its
	// certificate's public key (its DER SubjectPublicKeyInfo) is one of
	// them; the certificate then need not chain to the trust bundle, but
	// must still name the peer's label.
	Pins [][32]byte
	// TLS, when set, replaces the node's TLS material for this link.
	TLS Credentials

	// Source and more listen addresses.

	// Source, for a dialled link, is the local "IP" or "IP:PORT" it dials
	// from. Default "": the system's choice. A pinned port is bound with
	// SO_REUSEADDR, so a reconnect does not wait for TIME_WAIT; a port
	// held by another socket fails the dial with a clear error.
	Source string
	// ListenAlso are more addresses the link is listened for on, beside
	// Listen (a multihomed host). Default none.
	ListenAlso []string

	// Parent selection (parents.go).

	// Weight is a parent's share of new sessions when the node spreads
	// them (SelectSpread). Zero: 1. Only for parents.
	Weight int

	// Accepted networks (accept.go). Only for children.

	// AcceptNetworks are the networks the child may claim, in the text
	// form of ParseNetwork: a network, a host route or a pattern it (or a
	// node below it) announces is taken only when it lies within one of
	// them (a prefix inside, a name equal to one or under a pattern, a
	// pattern equal to or under one, ports inside); others are refused
	// and logged. The single entry AnyNetwork ("any") accepts every
	// network. Default none: the child's networks are all refused. A
	// reconfiguration that changes it keeps the link and its sessions.
	AcceptNetworks []string

	// Accepted labels (acceptlabels.go). Only for children.

	// AcceptLabels are the labels the child may announce below it: labels
	// or globs ("gwp-*"). The child's own label is always accepted; a
	// label outside them (and the networks announced with it as owner) is
	// refused and logged, never routed to the child nor passed up. The
	// single entry AnyLabel ("any") accepts every label. Default nil: any
	// label (the daemons set their own default). A reconfiguration that
	// changes it keeps the link and its sessions.
	AcceptLabels []string
}

// Service is what a destination node offers under a name: either TCP
// addresses to dial (tried in order) or an in-process Handler.
type Service struct {
	// Addrs are dialled in order; the first that answers is used.
	Addrs []string
	// Allow lists the origin labels that may use the service; empty: all.
	Allow []string
	// Handler, when set, serves the session in process instead of dialling.
	// It owns c and must close it. ctx is cancelled when the node shuts
	// down.
	Handler func(ctx context.Context, c *Conn)

	// Rules and source address.

	// Rules are first-match rules over the origin, the service and the
	// address dialled (acl.go), decided before Allow: when no rule
	// matches, Allow decides (an origin in it is allowed, any other
	// denied), and without Allow the session is allowed. An address a
	// rule denies is skipped; a session whose every address is denied is
	// refused with StatusDenied.
	Rules ACL
	// Source is the local "IP" or "IP:PORT" the service's addresses are
	// dialled from. Default "": the system's choice.
	Source string
}

// Config is a node's configuration.
type Config struct {
	Label    string
	Role     Role
	Links    []LinkConfig // parents in priority order, children in any order
	Services map[string]Service
	Tuning   Tuning
	// TLS is the node's certificate, key and trust bundle. Required unless
	// every link is Plaintext or has its own TLS.
	TLS Credentials
	// Version is the daemon's version, shown in Status. Optional.
	Version string

	// Inherited are listening sockets taken over from a predecessor
	// process (Node.HandOver), by the listen address of the links they
	// serve; New uses them instead of binding those addresses, and then
	// accepts links only once a parent link is up (at most the hello
	// timeout). The node closes them.
	Inherited map[string]net.Listener

	// Serves are the networks this node reaches directly, in the text form
	// of ParseNetwork ("10.20.0.0/16", "*.site-a.example:22"): they are
	// told to the parents, which route sessions of the address form to
	// this node by them, and this node dials only destinations in them.
	// Default none: no session of the address form ends here.
	Serves []string

	// Rules on the served networks.

	// ServesRules are first-match rules this node applies, after Serves,
	// to every destination of the address form it is asked to dial, over
	// the origin label and the destination's address, host name and port
	// (police.go): a destination inside Serves that a rule denies is
	// refused with StatusDenied. When no rule matches, the destination is
	// allowed (Serves already bounds it). Default none. Fixed for the
	// node's life, as Serves.
	ServesRules ACL

	// Parent selection (parents.go).

	// Parents is how a node with several parents chooses among them.
	// The zero value: the first configured parent that is up.
	Parents ParentPolicy

	// The endpoint registry (registry.go). RegisterEndpoints makes the
	// node learn the source address of every client of its entries and
	// announce each as a host route up the tree, until EndpointTTL
	// (default 24h) has passed since it was last seen; on the root, the
	// TTL is how long an endpoint no longer announced stays listed.
	// MaxEndpoints (default 20000) caps the addresses the node learns and
	// the host routes it takes from one child link.
	RegisterEndpoints bool
	EndpointTTL       time.Duration
	MaxEndpoints      int

	// Resolving destination names (resolve.go).

	// Resolver looks up the names of the destinations of the address form
	// this node serves, each lookup within Tuning.DialTimeout. Default
	// nil: the system's resolver (net.DefaultResolver). Tests set a fake
	// one. Fixed for the node's life.
	Resolver Resolver
}

// Validate reports every problem of c at once.
func (c Config) Validate() []error {
	var errs []error
	if err := CheckLabel(c.Label); err != nil {
		errs = append(errs, fmt.Errorf("label: %w", err))
	}
	if c.Role != RoleRoot && c.Role != RoleRelay && c.Role != RoleLeaf {
		errs = append(errs, fmt.Errorf("role %d is unknown", c.Role))
	}
	seen := map[string]bool{}
	parents := 0
	for i, l := range c.Links {
		if err := CheckLabel(l.Peer); err != nil {
			errs = append(errs, fmt.Errorf("link %d: peer: %w", i, err))
		}
		if l.Peer == c.Label {
			errs = append(errs, fmt.Errorf("link %d: peer %q is this node's own label", i, l.Peer))
		}
		if seen[l.Peer] {
			errs = append(errs, fmt.Errorf("link %d: peer %q is configured twice", i, l.Peer))
		}
		seen[l.Peer] = true
		if (l.Dial == "") == (l.Listen == "") {
			errs = append(errs, fmt.Errorf("link %d (%s): exactly one of dial and listen must be set", i, l.Peer))
		}
		if l.Parent {
			parents++
		}
		if !l.Plaintext && l.TLS == nil && c.TLS == nil {
			errs = append(errs, fmt.Errorf("link %d (%s): no TLS credentials: set the node's TLS or the link's, or make the link Plaintext", i, l.Peer))
		}
		switch {
		case c.Role == RoleRoot && l.Parent:
			errs = append(errs, fmt.Errorf("link %d (%s): a root has no parent", i, l.Peer))
		}
		if len(l.AcceptNetworks) > 0 && l.Parent {
			errs = append(errs, fmt.Errorf("link %d (%s): accepted networks are for children only", i, l.Peer))
		}
		if _, err := parseAccept(l.AcceptNetworks); err != nil {
			errs = append(errs, fmt.Errorf("link %d (%s): %w", i, l.Peer, err))
		}
		if len(l.AcceptLabels) > 0 && l.Parent {
			errs = append(errs, fmt.Errorf("link %d (%s): accepted labels are for children only", i, l.Peer))
		}
		if _, err := parseAcceptLabels(l.AcceptLabels); err != nil {
			errs = append(errs, fmt.Errorf("link %d (%s): %w", i, l.Peer, err))
		}
		switch {
		case l.Weight < 0:
			errs = append(errs, fmt.Errorf("link %d (%s): weight %d is negative", i, l.Peer, l.Weight))
		case l.Weight != 0 && !l.Parent:
			errs = append(errs, fmt.Errorf("link %d (%s): a weight is for parents only", i, l.Peer))
		}
	}
	if c.TLS == nil {
		tlsLinks := map[string]int{}
		for _, l := range c.Links {
			if l.Listen != "" && !l.Plaintext {
				tlsLinks[l.Listen]++
			}
		}
		for addr, k := range tlsLinks {
			if k > 1 {
				errs = append(errs, fmt.Errorf("listen address %s serves %d TLS links: it needs the node's TLS credentials", addr, k))
			}
		}
	}
	if c.Role != RoleRoot && parents == 0 {
		errs = append(errs, fmt.Errorf("a %s needs at least one parent link", c.Role))
	}
	for name, s := range c.Services {
		if err := CheckLabel(name); err != nil {
			errs = append(errs, fmt.Errorf("service %q: name: %w", name, err))
		}
		if len(s.Addrs) == 0 && s.Handler == nil {
			errs = append(errs, fmt.Errorf("service %q: no address", name))
		}
		if err := validateSource(fmt.Sprintf("service %q", name), s.Source); err != nil {
			errs = append(errs, err)
		}
	}
	for i, l := range c.Links {
		if err := validateSource(fmt.Sprintf("link %d (%s)", i, l.Peer), l.Source); err != nil {
			errs = append(errs, err)
		}
		if len(l.ListenAlso) > 0 && l.Listen == "" {
			errs = append(errs, fmt.Errorf("link %d (%s): more listen addresses without a first", i, l.Peer))
		}
	}
	for i, s := range c.Serves {
		if _, err := ParseNetwork(s); err != nil {
			errs = append(errs, fmt.Errorf("serves %d: %w", i, err))
		}
	}
	if c.EndpointTTL < 0 || c.MaxEndpoints < 0 {
		errs = append(errs, fmt.Errorf("endpoint ttl and max endpoints must not be negative"))
	}
	errs = append(errs, c.Tuning.Validate()...)
	errs = append(errs, c.Parents.Validate()...)
	return errs
}
