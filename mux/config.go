package mux

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/yamux"
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

// Tuning holds the timeouts, limits and yamux settings. The same values
// must be set on both ends of a link (they are the node's, for all links).
type Tuning struct {
	// WindowSize is yamux's maximum per-stream receive window. Default
	// 8 MiB; yamux's own minimum is 256 KiB.
	WindowSize uint32
	// KeepAliveInterval is how often a link is pinged. Default 10s. A link
	// cut without a FIN is noticed within KeepAliveInterval+WriteTimeout.
	KeepAliveInterval time.Duration
	// WriteTimeout bounds a write on a link and the wait for a keepalive
	// answer. Default 10s.
	WriteTimeout time.Duration
	// StreamCloseTimeout, when positive, resets a stream closed at one end
	// whose other end has not closed within it. Default 0: off. The ends
	// and relays close every stream themselves (when a session ends, an
	// abort, a timeout) and a dead link releases all of its streams, so the
	// timer only guards against a peer that never closes; but it also cuts
	// the tail of a clean session whose reader drains slower than the
	// timeout (8 MiB of window per hop at 140 KB/s takes a minute).
	StreamCloseTimeout time.Duration
	// AcceptBacklog is how many opened streams may wait to be accepted on
	// a link. Default 1024.
	AcceptBacklog int
	// HelloTimeout bounds the hello exchange on a new connection. Default 10s.
	HelloTimeout time.Duration
	// OpenTimeout bounds a session open: reading the open header on each
	// hop and waiting for the status. Default 15s.
	OpenTimeout time.Duration
	// DialTimeout bounds the destination's dial of a service address.
	// Default 10s. Keep it below OpenTimeout.
	DialTimeout time.Duration
	// IdleTimeout aborts a session that moved no byte either way for this
	// long, on every node it crosses. Zero: no idle timeout (the default).
	IdleTimeout time.Duration
	// PeerWriteTimeout aborts a session whose TCP peer at an end (the
	// client of an entry, the target of a service) takes no byte of what
	// the session has for it for this long: a peer that stopped reading
	// would otherwise hold the session, and its sockets on every node, for
	// ever. DefaultTuning sets 60s; zero: no limit (as peer_write_timeout: 0
	// in a configuration file, and as IdleTimeout and StreamCloseTimeout).
	PeerWriteTimeout time.Duration
	// BackoffMin and BackoffMax bound the reconnect backoff of dialled
	// links (exponential, with jitter). Defaults 500ms and 30s.
	BackoffMin, BackoffMax time.Duration
	// MaxSessions caps the sessions a node carries at once; an open beyond
	// it is refused. Default 50000; zero: the default.
	MaxSessions int
	// ShutdownAbortWait bounds how long Shutdown waits for goroutines after
	// it aborted what was left. Default 5s.
	ShutdownAbortWait time.Duration

	// The caps below bound what a neighbour can make a node hold; zero is
	// the default. A real site never meets them; a flood does.

	// MaxLabelsPerLink caps the labels one child may announce (its subtree);
	// an announcement over it is refused whole. Default 10000.
	MaxLabelsPerLink int
	// MaxRoutes caps the routing table; an announcement that would pass it
	// is refused whole. Default 100000.
	MaxRoutes int
	// MaxSessionsPerLink caps the sessions that arrive through one link.
	// Default 30000.
	MaxSessionsPerLink int
	// MaxSessionsPerOrigin caps the sessions of one origin label on this
	// node. Default 20000.
	MaxSessionsPerOrigin int
	// MaxHellos caps the link connections in their TLS handshake or hello
	// on one listen address, and MaxHellosPerSource those from one source
	// address; beyond them a new connection is closed at once, counted in
	// the refusal summary. Defaults 64 and 8.
	MaxHellos, MaxHellosPerSource int
	// RefusalLogBurst is how many refused link connections (and sessions
	// refused for a forged origin) are logged in full per minute; the rest
	// are summed up in one line a minute with their top sources. Default
	// 10.
	RefusalLogBurst int

	// Reconnect storms: when a node with many children restarts, they
	// come back spread over time and are admitted at a bounded rate.

	// ReconnectSpread spreads the first reconnect of a dialled link that
	// was up and went down: it waits the backoff's first step plus a
	// random part of ReconnectSpread, so that the children of a node that
	// restarts do not all come back in the same second. Default 2s; zero:
	// the default.
	ReconnectSpread time.Duration
	// MaxHandshakeRate is how many new link connections per second one
	// listen address admits to their TLS handshake and hello (a token
	// bucket, HandshakeBurst deep); beyond it a new connection waits in
	// the listen queue, where it costs the node nothing, until a token is
	// free. Defaults 200 per second and a burst of 64; zero: the default.
	MaxHandshakeRate float64
	HandshakeBurst   int

	// The status query of the tree (PROTOCOL.md section 2.1); zero is the
	// default.

	// TreeTimeout bounds how long the root waits for the tree's answer; each
	// hop gives its children three quarters of the time it was given, and a
	// child that does not answer in that time shows as "no answer".
	// Default 5s.
	TreeTimeout time.Duration
	// TreeAnswerMax caps a node's answer to a tree query, in bytes: an
	// answer over it is cut down by its sender (the deepest levels first)
	// and refused by its reader. Default 1 MiB.
	TreeAnswerMax int
}

// DefaultTuning returns the defaults documented on Tuning.
func DefaultTuning() Tuning {
	return Tuning{
		WindowSize:         8 << 20,
		KeepAliveInterval:  10 * time.Second,
		WriteTimeout:       10 * time.Second,
		StreamCloseTimeout: 0,
		AcceptBacklog:      1024,
		HelloTimeout:       10 * time.Second,
		OpenTimeout:        15 * time.Second,
		DialTimeout:        10 * time.Second,
		BackoffMin:         500 * time.Millisecond,
		BackoffMax:         30 * time.Second,
		MaxSessions:        50000,
		ShutdownAbortWait:  5 * time.Second,
		PeerWriteTimeout:   60 * time.Second,

		MaxLabelsPerLink:     10000,
		MaxRoutes:            100000,
		MaxSessionsPerLink:   30000,
		MaxSessionsPerOrigin: 20000,
		MaxHellos:            64,
		MaxHellosPerSource:   8,
		RefusalLogBurst:      10,

		ReconnectSpread:  2 * time.Second,
		MaxHandshakeRate: 200,
		HandshakeBurst:   64,

		TreeTimeout:   defaultTreeTimeout,
		TreeAnswerMax: defaultTreeAnswerMax,
	}
}

// withDefaults fills the zero fields of t with the defaults, except those
// where zero means off: StreamCloseTimeout, IdleTimeout, PeerWriteTimeout.
func (t Tuning) withDefaults() Tuning {
	d := DefaultTuning()
	if t.WindowSize == 0 {
		t.WindowSize = d.WindowSize
	}
	if t.KeepAliveInterval == 0 {
		t.KeepAliveInterval = d.KeepAliveInterval
	}
	if t.WriteTimeout == 0 {
		t.WriteTimeout = d.WriteTimeout
	}
	if t.AcceptBacklog == 0 {
		t.AcceptBacklog = d.AcceptBacklog
	}
	if t.HelloTimeout == 0 {
		t.HelloTimeout = d.HelloTimeout
	}
	if t.OpenTimeout == 0 {
		t.OpenTimeout = d.OpenTimeout
	}
	if t.DialTimeout == 0 {
		t.DialTimeout = d.DialTimeout
	}
	if t.BackoffMin == 0 {
		t.BackoffMin = d.BackoffMin
	}
	if t.BackoffMax == 0 {
		t.BackoffMax = d.BackoffMax
	}
	if t.MaxSessions == 0 {
		t.MaxSessions = d.MaxSessions
	}
	if t.ShutdownAbortWait == 0 {
		t.ShutdownAbortWait = d.ShutdownAbortWait
	}
	for _, f := range []struct{ v, d *int }{
		{&t.MaxLabelsPerLink, &d.MaxLabelsPerLink},
		{&t.MaxRoutes, &d.MaxRoutes},
		{&t.MaxSessionsPerLink, &d.MaxSessionsPerLink},
		{&t.MaxSessionsPerOrigin, &d.MaxSessionsPerOrigin},
		{&t.MaxHellos, &d.MaxHellos},
		{&t.MaxHellosPerSource, &d.MaxHellosPerSource},
		{&t.RefusalLogBurst, &d.RefusalLogBurst},
		{&t.HandshakeBurst, &d.HandshakeBurst},
	} {
		if *f.v == 0 {
			*f.v = *f.d
		}
	}
	if t.ReconnectSpread == 0 {
		t.ReconnectSpread = d.ReconnectSpread
	}
	if t.MaxHandshakeRate == 0 {
		t.MaxHandshakeRate = d.MaxHandshakeRate
	}
	return t
}

// Validate reports every problem of t at once.
func (t Tuning) Validate() []error {
	var errs []error
	if t.WindowSize != 0 && t.WindowSize < 256<<10 {
		errs = append(errs, fmt.Errorf("window size %d is below yamux's minimum of 262144", t.WindowSize))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"keepalive interval", t.KeepAliveInterval},
		{"write timeout", t.WriteTimeout},
		{"stream close timeout", t.StreamCloseTimeout},
		{"hello timeout", t.HelloTimeout},
		{"open timeout", t.OpenTimeout},
		{"dial timeout", t.DialTimeout},
		{"idle timeout", t.IdleTimeout},
		{"peer write timeout", t.PeerWriteTimeout},
		{"backoff min", t.BackoffMin},
		{"backoff max", t.BackoffMax},
		{"reconnect spread", t.ReconnectSpread},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %s is negative", d.name, d.v))
		}
	}
	if t.BackoffMin > 0 && t.BackoffMax > 0 && t.BackoffMin > t.BackoffMax {
		errs = append(errs, fmt.Errorf("backoff min %s is above backoff max %s", t.BackoffMin, t.BackoffMax))
	}
	if t.AcceptBacklog < 0 || t.MaxSessions < 0 {
		errs = append(errs, fmt.Errorf("accept backlog and max sessions must not be negative"))
	}
	if t.MaxLabelsPerLink < 0 || t.MaxRoutes < 0 || t.MaxSessionsPerLink < 0 || t.MaxSessionsPerOrigin < 0 || t.MaxHellos < 0 || t.MaxHellosPerSource < 0 || t.RefusalLogBurst < 0 {
		errs = append(errs, fmt.Errorf("caps must not be negative"))
	}
	if t.MaxHandshakeRate < 0 || t.HandshakeBurst < 0 {
		errs = append(errs, fmt.Errorf("handshake rate and burst must not be negative"))
	}
	return errs
}

// yamuxConfig builds the yamux configuration of a link from t.
func (t Tuning) yamuxConfig(log yamux.Logger) *yamux.Config {
	return &yamux.Config{
		AcceptBacklog:          t.AcceptBacklog,
		EnableKeepAlive:        true,
		KeepAliveInterval:      t.KeepAliveInterval,
		ConnectionWriteTimeout: t.WriteTimeout,
		MaxStreamWindowSize:    t.WindowSize,
		// No yamux open timeout: it closes the whole link when one open is
		// not acknowledged in time; openOn bounds each open itself.
		StreamOpenTimeout:  0,
		StreamCloseTimeout: t.StreamCloseTimeout,
		Logger:             log,
		LogOutput:          nil,
	}
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
