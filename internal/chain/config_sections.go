package chain

import "github.com/relaychain/relaychain/internal/pki"

// This file is the sections of a configuration file that a node has
// several of: its links (parents and children), services, entries and the
// users of an entry.

// Link is one neighbour: its label and which side opens the connection.
type Link struct {
	// Label is the neighbour's label. Required.
	Label string `yaml:"label"`
	// Dial is the neighbour's HOST:PORT when this node opens the
	// connection. Exactly one of Dial and Listen.
	Dial string `yaml:"dial"`
	// Listen is this node's HOST:PORT when the neighbour opens the
	// connection, or a list of them (a host with several addresses).
	// Several links may share one listen address.
	Listen Addrs `yaml:"listen"`
	// TLS, when set, replaces the node's tls section for this link (all
	// three files). Default: the node's.
	TLS *TLS `yaml:"tls"`
	// Pin, when set, accepts the neighbour only when the SHA-256 of its
	// certificate's public key is one of these, written
	// "sha256:BASE64" or "sha256:HEX" ("NAME pki issue" prints it); its
	// certificate then need not chain to the CA, but must still name its
	// label.
	Pin []string `yaml:"pin"`
	// InsecurePlaintext carries the link over plain TCP, without TLS:
	// anyone on the path can read it and pose as the neighbour. Default
	// false. Logged as a warning.
	InsecurePlaintext bool `yaml:"insecure_plaintext"`

	tlsStore *pki.Store // TLS, loaded by Load

	// Source address.

	// Source, on a dialled link, is the local "IP" or "IP:PORT" it dials
	// from, for a firewall that matches the source. Default: the system's
	// choice. A pinned port is bound with SO_REUSEADDR, so a reconnect
	// does not wait for TIME_WAIT.
	Source string `yaml:"source"`

	// Parent selection (parents.go).

	// Weight is a parent's share of new sessions under parent_selection:
	// spread, 1 to 1000. Default 1. Not for children.
	Weight int `yaml:"weight"`

	// Accepted networks (accept.go).

	// AcceptNetworks, on a child link, are the networks the child may
	// claim, written as in serves: a network, a host route (register_endpoints)
	// or a pattern announced through this link, by the child or a node
	// below it, is taken only when it lies within one of them; others are
	// refused and logged at level 1. "any" (alone) accepts every network.
	// Default none: every network announced through the link is refused.
	// A reload applies a change without touching the link's sessions.
	// Not for parents.
	AcceptNetworks Addrs `yaml:"accept_networks"`

	// Accepted labels (acceptlabels.go).

	// AcceptLabels, on a child link, are the labels the child may announce
	// below it: labels or patterns (gwp-*). A label announced through
	// this link outside them, with its networks, is refused and logged at
	// level 1; the child's own label is always taken. "any" (alone)
	// accepts every label. Default: the child's own label only, so that a
	// relay's (or a gwproxy's with an eventsink) link lists the labels
	// below it. A reload applies a change without touching the link's
	// sessions. Not for parents.
	AcceptLabels Addrs `yaml:"accept_labels"`
}

// Service is a named exit: addresses this node dials for sessions that
// end here.
type Service struct {
	// Name is what entries ask for. Required.
	Name string `yaml:"name"`
	// Addrs are tried in order; the first that answers serves the session.
	Addrs []string `yaml:"addrs"`
	// Allow lists the origin labels that may use the service; empty: all.
	Allow []string `yaml:"allow"`

	// Rules and source address.

	// Rules are first-match rules over the origin and each address
	// dialled; when none matches, allow decides (and without allow, the
	// session is allowed). An address denied is skipped.
	Rules []Rule `yaml:"rules"`
	// Source is the local "IP" or "IP:PORT" the addresses are dialled
	// from. Default: the system's choice.
	Source string `yaml:"source"`
}

// Entry is a listener whose connections become sessions.
type Entry struct {
	// Name appears in the logs. Required.
	Name string `yaml:"name"`
	// Listen is the HOST:PORT clients connect to, or a list of them (a
	// host with several addresses).
	Listen Addrs `yaml:"listen"`
	// Dest is the label of the node that serves the session.
	Dest string `yaml:"dest"`
	// Service is the service name at Dest.
	Service string `yaml:"service"`

	// Kind is "" (the default) for an entry whose sessions all go to
	// Service at Dest; "socks5" (RFC 1928 CONNECT) or "http_connect" (HTTP
	// CONNECT) for an entry whose clients name each session's destination
	// address. Such an entry has no service; its Dest is optional on the
	// epproxy (default: the node whose served networks hold the address,
	// the most specific match) and required on a gwproxy (the epproxy,
	// which dials only addresses in its own serves).
	Kind string `yaml:"kind"`
	// Users, on a socks5 or http_connect entry, are the user names and
	// passwords its clients must give (SOCKS5 username/password, HTTP
	// Basic). Default none: no authentication.
	Users []User `yaml:"users"`

	// Rules.

	// Rules are first-match rules over the client's source address (and
	// dests, services); when none matches, the client is allowed.
	Rules []Rule `yaml:"rules"`

	// On an entry of kind "port_map" (epproxy only; registry.go), Listen
	// is HOST:LOW-HIGH, a range of ports each bound to one endpoint of
	// the registry (a new endpoint takes the next free port; the
	// assignment is kept across restarts), and EndpointPort is the port
	// its sessions reach at that endpoint. Required there.
	EndpointPort int `yaml:"endpoint_port"`
}

// User is one user of an entry that takes the destination from its
// client.
type User struct {
	// Name is the user name. Required.
	Name string `yaml:"name"`
	// Password is the user's password, in clear: keep the file readable
	// by the daemon's user only. One of Password and PasswordHash is
	// required; "NAME chain check" warns about a clear one.
	Password string `yaml:"password"`

	// Hashed password.

	// PasswordHash is the user's password as a bcrypt hash ("$2a$10$...",
	// made by "NAME chain hash-password"), instead of Password.
	PasswordHash string `yaml:"password_hash"`
}
