// Package chain holds what the chain daemons (epproxy, gwproxy, relay and
// the chain side of eventsink) share: their YAML configuration, its
// validation, the run loop that turns it into a mux.Node with its entries
// and exits, and the configurations of a whole chain checked together,
// with the firewall rules they need (Set, "NAME chain").
//
// Typical usage, a daemon's whole main (a daemon with pieces of its own,
// such as the epproxy's event service, passes them in Hooks; see
// ExampleSpec and ExampleHooks):
//
//	func main() { daemon.Main(chain.Spec(chain.Relay, chain.Hooks{})) }
package chain

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/relaychain/relaychain/internal/daemon"
	"github.com/relaychain/relaychain/internal/pki"
	"github.com/relaychain/relaychain/mux"
)

// Kind is one of the daemons built on this package.
type Kind struct {
	Name string   // binary and config file name
	Role mux.Role // its place in the tree
	// What its configuration may hold.
	Parents, Children, Services, Entries bool
	Usage                                string
}

var (
	EPProxy = Kind{Name: "epproxy", Role: mux.RoleRoot, Children: true, Services: true, Entries: true,
		Usage: "endpoint proxy: the root of the relay chain, beside the gateway in the secure zone"}
	GWProxy = Kind{Name: "gwproxy", Role: mux.RoleLeaf, Parents: true, Children: true, Services: true, Entries: true,
		Usage: "gateway proxy: a leaf of the relay chain, beside the endpoints"}
	Relay = Kind{Name: "relay", Role: mux.RoleRelay, Parents: true, Children: true,
		Usage: "relay: forwards sessions between its parent and its children across a firewall"}
	EventSink = Kind{Name: "eventsink", Role: mux.RoleLeaf, Parents: true,
		Usage: "event sink: takes events outside the firewall, spools them and forwards them up the chain"}
)

// withArticle returns "a relay", "an epproxy": the kind's name for messages.
func (k Kind) withArticle() string {
	if k.Name != "" && strings.ContainsRune("aeiou", rune(k.Name[0])) {
		return "an " + k.Name
	}
	return "a " + k.Name
}

// Config is a chain daemon's configuration file.
type Config struct {
	// Label is this node's unique name in the tree. Required.
	Label string `yaml:"label"`
	// Log is the log section; see daemon.LogConfig.
	Log daemon.LogConfig `yaml:"log"`
	// Parents are the neighbours nearer the secure zone, in priority
	// order. Not for the epproxy.
	Parents []Link `yaml:"parents"`
	// Children are the neighbours further out. Not for an eventsink; on a
	// gwproxy, only the eventsinks beside it.
	Children []Link `yaml:"children"`
	// Services are what this node dials on behalf of sessions whose
	// destination it is (upcall exits on the epproxy, downcall exits on a
	// gwproxy). Not for relays.
	Services []Service `yaml:"services"`
	// Entries are listeners whose connections become sessions to a service
	// at another node (downcall entries on the epproxy, upcall entries on a
	// gwproxy). Not for relays.
	Entries []Entry `yaml:"entries"`
	// Tuning holds link and session timeouts and sizes.
	Tuning Tuning `yaml:"tuning"`
	// ShutdownGrace is how long SIGINT/SIGTERM waits for sessions to end
	// before aborting them, and how long a reload lets the sessions of a
	// removed link, service or entry go on. Default 10s; 0 aborts at once.
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`

	// Events is the events section: the epproxy's event delivery, or the
	// eventsink's intake, spool and forwarding. Optional on the epproxy.
	Events *EventsConfig `yaml:"events"`

	// TLS is this node's certificate, key and CA bundle, for every link
	// that has no tls of its own and is not insecure_plaintext.
	TLS *TLS `yaml:"tls"`

	// Admin is the admin section: the status socket and the optional
	// HTTP listener for metrics, health and profiling.
	Admin Admin `yaml:"admin"`

	// Serves are the networks this node reaches directly and dials for
	// sessions that name a destination address: IP prefixes and host
	// names or patterns, optionally with ports ("10.20.0.0/16",
	// "*.site-a.example", "10.20.0.0/16:22", "[2001:db8::/32]:443").
	// They are told up the tree, where socks5 and http_connect entries
	// route by them, the most specific match first. Default none. Not
	// for an eventsink.
	Serves []string `yaml:"serves"`

	// The endpoint registry (registry.go). RegisterEndpoints, on a
	// gwproxy, learns the source address of every client of its entries
	// (the endpoints making upcalls) and announces each up the tree as a
	// host route, until EndpointTTL (default 24h) has passed since it was
	// last seen; on the epproxy, EndpointTTL is how long an endpoint no
	// longer announced stays in the registry. MaxEndpoints (default
	// 20000) caps the endpoints a gwproxy learns and the host routes a
	// node takes from one child. RegistryFile, on the epproxy, is where
	// the registry and the port_map ports are kept across restarts
	// (default registry.json beside the configuration file).
	RegisterEndpoints bool          `yaml:"register_endpoints"`
	EndpointTTL       time.Duration `yaml:"endpoint_ttl"`
	MaxEndpoints      int           `yaml:"max_endpoints"`
	RegistryFile      string        `yaml:"registry_file"`

	kind     Kind
	file     string
	pos      *daemon.Positions // the lines of the file, for problems found later (Set.Check)
	tlsStore *pki.Store        // TLS, loaded by Load
	// noTLSFiles: loaded with LoadOptions.SkipTLSFiles, without TLS
	// material; Run refuses it.
	noTLSFiles bool

	// Rules on the served networks.

	// ServesRules are first-match rules this node applies, after serves,
	// to every destination it is asked to dial for a socks5 or
	// http_connect session, over the origin (origins) and the destination
	// (nets, hosts, ports): a destination inside serves that a rule denies
	// is refused there, whoever asked. When none matches, the destination
	// is allowed. Default none. Changing them needs a restart, as serves.
	ServesRules []Rule `yaml:"serves_rules"`

	// Parent selection (parents.go): how a node with several parents
	// chooses among them; top-level keys.
	ParentChoice ParentChoice `yaml:",inline"`
}

// Admin is a node's admin section.
type Admin struct {
	// Socket is the Unix socket "NAME status" asks, mode 0600, removed on
	// shutdown. Default "": NAME.sock beside the configuration file. A
	// relative path is taken relative to the configuration file's
	// directory.
	Socket string `yaml:"socket"`
	// Listen, when set, is a HOST:PORT for an HTTP listener serving
	// /metrics (Prometheus), /healthz and /readyz. Default "": none. It is
	// not authenticated: keep it on loopback or a management network.
	Listen string `yaml:"listen"`
	// PProf adds /debug/pprof/ to the HTTP listener. Default false.
	PProf bool `yaml:"pprof"`
}

// AdminSocket returns the path of the admin socket.
func (c *Config) AdminSocket() string {
	if c.Admin.Socket != "" {
		return c.Admin.Socket
	}
	return filepath.Join(filepath.Dir(c.file), c.kind.Name+".sock")
}

// Logging returns the log section (daemon.Config).
func (c *Config) Logging() daemon.LogConfig { return c.Log }

// Kind returns the daemon kind the configuration was loaded for.
func (c *Config) Kind() Kind { return c.kind }

// File returns the file the configuration was loaded from.
func (c *Config) File() string { return c.file }

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

// Tuning mirrors mux.Tuning in the configuration file. Every field has
// the default given in its comment; set both ends of a link alike.
type Tuning struct {
	// WindowSize is the per-session receive window: bytes ("8388608") or
	// with a unit ("8MiB", "512KiB"). Default 8MiB, at least 256KiB.
	WindowSize ByteSize `yaml:"window_size"`
	// KeepAliveInterval pings each link this often. Default 10s.
	KeepAliveInterval time.Duration `yaml:"keepalive_interval"`
	// WriteTimeout bounds a link write and the keepalive answer. Default
	// 10s. A link cut without a FIN is noticed within keepalive_interval +
	// write_timeout.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// StreamCloseTimeout, when set, resets a session stream closed at one
	// end whose other end does not close within it. Default 0: off (every
	// node closes its streams itself, and a dead link releases them all);
	// a value cuts the tail of a session whose reader drains slower.
	StreamCloseTimeout time.Duration `yaml:"stream_close_timeout"`
	// AcceptBacklog is how many session opens may wait on a link. Default 1024.
	AcceptBacklog int `yaml:"accept_backlog"`
	// HelloTimeout bounds the hello on a new link connection. Default 10s.
	HelloTimeout time.Duration `yaml:"hello_timeout"`
	// OpenTimeout bounds a session open on each hop. Default 15s.
	OpenTimeout time.Duration `yaml:"open_timeout"`
	// DialTimeout bounds the dial of a service address. Default 10s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// IdleTimeout aborts sessions idle this long. Default 0: never.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// PeerWriteTimeout aborts a session whose TCP peer (an entry's client,
	// a service's target) takes no byte for this long. Default 60s; 0:
	// never.
	PeerWriteTimeout time.Duration `yaml:"peer_write_timeout"`
	// ReconnectMin and ReconnectMax bound the backoff between attempts to
	// dial a link. Defaults 500ms and 30s.
	ReconnectMin time.Duration `yaml:"reconnect_min"`
	ReconnectMax time.Duration `yaml:"reconnect_max"`
	// MaxSessions caps concurrent sessions on this node. Default 50000.
	MaxSessions int `yaml:"max_sessions"`
	// MaxSessionsPerLink caps the sessions that arrive through one link.
	// Default 30000.
	MaxSessionsPerLink int `yaml:"max_sessions_per_link"`
	// MaxSessionsPerOrigin caps the sessions of one origin label on this
	// node. Default 20000.
	MaxSessionsPerOrigin int `yaml:"max_sessions_per_origin"`
	// MaxLabelsPerLink caps the labels one child may announce; more is
	// refused whole. Default 10000.
	MaxLabelsPerLink int `yaml:"max_labels_per_link"`
	// MaxRoutes caps the routing table. Default 100000.
	MaxRoutes int `yaml:"max_routes"`
	// MaxHellos caps the link connections in their handshake on one listen
	// address, MaxHellosPerSource those from one source address; beyond,
	// a connection is closed at once. Defaults 64 and 8.
	MaxHellos          int `yaml:"max_hellos"`
	MaxHellosPerSource int `yaml:"max_hellos_per_source"`
	// RefusalLogBurst is how many refused link connections are logged in
	// full per minute; the rest go in one summary line a minute. Default 10.
	RefusalLogBurst int `yaml:"refusal_log_burst"`

	// Reconnect storms (a node with many children restarting).

	// ReconnectSpread spreads the first reconnect of a dialled link that
	// was up: a random part of it is added to reconnect_min's first step,
	// so that the children of a node that restarts do not all come back
	// in the same second. Default 2s.
	ReconnectSpread time.Duration `yaml:"reconnect_spread"`
	// MaxHandshakeRate is how many new link connections per second one
	// listen address admits to their handshake, after a burst of
	// HandshakeBurst; the rest wait in the listen queue. Defaults 200 and
	// 64.
	MaxHandshakeRate float64 `yaml:"max_handshake_rate"`
	HandshakeBurst   int     `yaml:"handshake_burst"`

	// The status query of the tree (epproxy status --tree).

	// TreeTimeout bounds how long the root waits for the tree; each hop
	// gives its children three quarters of the time it was given. Default
	// 5s.
	TreeTimeout time.Duration `yaml:"tree_timeout"`
	// TreeAnswerMax caps a node's answer to a tree query: bytes or with a
	// unit. Default 1MiB.
	TreeAnswerMax ByteSize `yaml:"tree_answer_max"`
}

// ByteSize is a size in bytes, written as a number or with a unit
// (KiB, MiB, GiB, KB, MB, GB).
type ByteSize uint64

// UnmarshalYAML reads "8MiB" or 8388608. A value that is not a size is
// reported as a *yaml.TypeError, like any value of the wrong type, so that
// the loader names its line and key and goes on to report the file's other
// problems (any other error would abort the decode and lose both).
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		if v, err := ParseByteSize(n.Value); err == nil {
			*b = v
			return nil
		}
	}
	// The text yaml.v3 itself writes for a value of the wrong type.
	value := ""
	if n.Kind == yaml.ScalarNode && !strings.ContainsAny(n.Value, "`\r\n") {
		value = n.Value
		if len(value) > 10 {
			value = value[:7] + "..."
		}
		value = " `" + value + "`"
	}
	return &yaml.TypeError{Errors: []string{
		fmt.Sprintf("line %d: cannot unmarshal %s%s into chain.ByteSize", n.Line, n.ShortTag(), value),
	}}
}

// ParseByteSize parses "8MiB", "512KiB", "1GB", "4096".
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   uint64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"B", 1}}
	mult := uint64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			mult = u.mult
			t = strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
			break
		}
	}
	n, err := strconv.ParseUint(t, 10, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("size %q: want a whole number of bytes, optionally with a unit (KiB, MiB, GiB)", s)
	}
	if err != nil || n > (1<<63)/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return ByteSize(n * mult), nil
}

// Default returns a configuration with every default set, for kind k.
func Default(k Kind) *Config {
	d := mux.DefaultTuning()
	return &Config{
		Log:           daemon.DefaultLogConfig(),
		ShutdownGrace: 10 * time.Second,
		Tuning: Tuning{
			WindowSize:         ByteSize(d.WindowSize),
			KeepAliveInterval:  d.KeepAliveInterval,
			WriteTimeout:       d.WriteTimeout,
			StreamCloseTimeout: d.StreamCloseTimeout,
			AcceptBacklog:      d.AcceptBacklog,
			HelloTimeout:       d.HelloTimeout,
			OpenTimeout:        d.OpenTimeout,
			DialTimeout:        d.DialTimeout,
			IdleTimeout:        d.IdleTimeout,
			PeerWriteTimeout:   d.PeerWriteTimeout,
			ReconnectMin:       d.BackoffMin,
			ReconnectMax:       d.BackoffMax,
			MaxSessions:        d.MaxSessions,

			MaxSessionsPerLink:   d.MaxSessionsPerLink,
			MaxSessionsPerOrigin: d.MaxSessionsPerOrigin,
			MaxLabelsPerLink:     d.MaxLabelsPerLink,
			MaxRoutes:            d.MaxRoutes,
			MaxHellos:            d.MaxHellos,
			MaxHellosPerSource:   d.MaxHellosPerSource,
			RefusalLogBurst:      d.RefusalLogBurst,

			ReconnectSpread:  d.ReconnectSpread,
			MaxHandshakeRate: d.MaxHandshakeRate,
			HandshakeBurst:   d.HandshakeBurst,

			TreeTimeout:   d.TreeTimeout,
			TreeAnswerMax: ByteSize(d.TreeAnswerMax),
		},
		kind:         k,
		ParentChoice: defaultParentChoice(),
	}
}

// Load reads path for a daemon of kind k: defaults, then a strict decode,
// then Validate. Every problem is reported at once, each as
// "FILE:LINE: KEY: problem". A relative log file or TLS file is taken
// relative to the configuration file's directory. The TLS files are
// loaded into the stores that MuxConfig hands to the node (TLSStores).
func Load(k Kind, path string) (*Config, error) {
	return LoadWith(k, path, LoadOptions{})
}

// LoadOptions change what LoadWith reads besides the file. The zero value
// is Load's.
type LoadOptions struct {
	// SkipTLSFiles checks the tls blocks and pins as Load does (each block
	// complete, pins well formed, TLS wherever a link is not
	// insecure_plaintext) but reads none of the files they name: for
	// checking the configurations of a whole chain on a host that holds
	// none of the nodes' keys ("NAME chain check"). A configuration loaded
	// so has no TLS material, and Run refuses it. Default false: the files
	// are read and checked.
	SkipTLSFiles bool
}

// LoadWith is Load with options.
func LoadWith(k Kind, path string, o LoadOptions) (*Config, error) {
	c := Default(k)
	pos, err := daemon.LoadFile(path, c)
	if err != nil {
		return nil, err
	}
	c.kind, c.file, c.pos, c.noTLSFiles = k, path, pos, o.SkipTLSFiles
	if err := c.Validate(pos); err != nil {
		return nil, err
	}
	if c.Log.File != "" && !filepath.IsAbs(c.Log.File) {
		c.Log.File = filepath.Join(filepath.Dir(path), c.Log.File)
	}
	if c.Events != nil {
		c.Events.resolve(filepath.Dir(path))
	}
	if c.Admin.Socket != "" && !filepath.IsAbs(c.Admin.Socket) {
		c.Admin.Socket = filepath.Join(filepath.Dir(path), c.Admin.Socket)
	}
	if c.RegistryFile != "" && !filepath.IsAbs(c.RegistryFile) {
		c.RegistryFile = filepath.Join(filepath.Dir(path), c.RegistryFile)
	}
	if c.noTLSFiles {
		return c, nil
	}
	if err := c.openTLS(pos); err != nil {
		return nil, err
	}
	return c, nil
}

// Validate checks everything the decode could not, reporting every problem.
func (c *Config) Validate(pos *daemon.Positions) error {
	ps := &daemon.Problems{Pos: pos}
	k := c.kind
	if c.Label == "" {
		ps.Errorf("label", "missing: every node needs a unique label")
	} else {
		ps.Check("label", mux.CheckLabel(c.Label))
	}
	c.Log.Validate(ps, "log")

	labels := map[string]string{} // label -> path where first used
	listens := []listenUse{}
	checkLinks := func(key string, links []Link, allowed bool, what string) {
		if len(links) > 0 && !allowed {
			ps.Errorf(key, "%s has no %s", k.withArticle(), what)
			return
		}
		for i, l := range links {
			p := fmt.Sprintf("%s[%d]", key, i)
			switch {
			case l.Label == "":
				ps.Errorf(p+".label", "missing: the neighbour's label")
			case mux.CheckLabel(l.Label) != nil:
				ps.Check(p+".label", mux.CheckLabel(l.Label))
			case l.Label == c.Label:
				ps.Errorf(p+".label", "%s is this node's own label", l.Label)
			default:
				if first, dup := labels[l.Label]; dup {
					ps.Errorf(p+".label", "label %s is used twice (first at %s)", l.Label, first)
				} else {
					labels[l.Label] = p + ".label"
				}
			}
			switch {
			case l.Dial == "" && len(l.Listen) == 0:
				ps.Errorf(p, "link to %s has no direction: set dial (this node connects) or listen (the neighbour connects)", l.Label)
			case l.Dial != "" && len(l.Listen) > 0:
				ps.Errorf(p, "link to %s sets both dial and listen; choose one", l.Label)
			case l.Dial != "":
				ps.Check(p+".dial", daemon.CheckDialAddr(l.Dial))
			default:
				listens = append(listens, checkListens(ps, p+".listen", l.Listen, true)...)
			}
			if l.Source != "" && l.Dial == "" {
				ps.Errorf(p+".source", "only a dialled link has a source address")
			}
			listens = append(listens, checkSource(ps, p+".source", l.Source)...)
			checkAcceptNetworks(ps, p+".accept_networks", l.AcceptNetworks, key == "parents")
		}
	}
	checkLinks("parents", c.Parents, k.Parents, "parents")
	checkLinks("children", c.Children, k.Children, "children")
	if k.Parents && len(c.Parents) == 0 {
		ps.Errorf("parents", "missing: %s needs at least one parent", k.withArticle())
	}
	c.validateTLS(ps)

	if len(c.Services) > 0 && !k.Services {
		ps.Errorf("services", "%s offers no services", k.withArticle())
	}
	names := map[string]bool{}
	for i, s := range c.Services {
		p := fmt.Sprintf("services[%d]", i)
		switch {
		case s.Name == "":
			ps.Errorf(p+".name", "missing: the service name entries ask for")
		case mux.CheckLabel(s.Name) != nil:
			ps.Errorf(p+".name", "%v", mux.CheckLabel(s.Name))
		case names[s.Name]:
			ps.Errorf(p+".name", "service %s is defined twice", s.Name)
		}
		names[s.Name] = true
		if len(s.Addrs) == 0 {
			ps.Errorf(p+".addrs", "missing: at least one HOST:PORT to dial")
		}
		for j, a := range s.Addrs {
			ps.Check(fmt.Sprintf("%s.addrs[%d]", p, j), daemon.CheckDialAddr(a))
		}
		for j, a := range s.Allow {
			ps.Check(fmt.Sprintf("%s.allow[%d]", p, j), mux.CheckLabel(a))
		}
		parseRules(ps, p+".rules", s.Rules, false)
		listens = append(listens, checkSource(ps, p+".source", s.Source)...)
	}

	if len(c.Entries) > 0 && !k.Entries {
		ps.Errorf("entries", "%s has no entries", k.withArticle())
	}
	enames := map[string]bool{}
	for i, e := range c.Entries {
		p := fmt.Sprintf("entries[%d]", i)
		switch {
		case e.Name == "":
			ps.Errorf(p+".name", "missing: a name for the logs")
		case enames[e.Name]:
			ps.Errorf(p+".name", "entry %s is defined twice", e.Name)
		}
		enames[e.Name] = true
		if e.Kind == KindPortMap {
			c.validatePortMap(ps, p, e)
			continue
		}
		if len(e.Listen) == 0 {
			ps.Errorf(p+".listen", "missing: the HOST:PORT clients connect to")
		} else {
			listens = append(listens, checkListens(ps, p+".listen", e.Listen, false)...)
		}
		if e.Kind != "" { // the destination comes from the client: addrentry.go
			c.validateAddrEntry(ps, p, e)
			continue
		}
		parseRules(ps, p+".rules", e.Rules, true)
		switch {
		case e.Dest == "":
			ps.Errorf(p+".dest", "missing: the label of the node that serves the sessions")
		case mux.CheckLabel(e.Dest) != nil:
			ps.Check(p+".dest", mux.CheckLabel(e.Dest))
		case e.Dest == c.Label && c.Label != "":
			ps.Errorf(p+".dest", "%s is this node itself", e.Dest)
		}
		if e.Service == "" {
			ps.Errorf(p+".service", "missing: the service name at %s", e.Dest)
		} else if err := mux.CheckLabel(e.Service); err != nil {
			ps.Errorf(p+".service", "%v", err)
		}
	}
	if c.Events != nil {
		c.Events.validate(ps, k, listens)
		listens = append(listens, c.Events.eventListens()...)
	} else if k.Name == EventSink.Name {
		ps.Errorf("events", "missing: an eventsink needs its events section")
	} else if k.Name != EPProxy.Name && ps.Pos.Has("events") {
		// "events:" with no value decodes to nil; still not for this kind.
		ps.Errorf("events", "%s has no events section", k.withArticle())
	}
	if c.Admin.Listen != "" {
		if err := daemon.CheckListenAddr(c.Admin.Listen, false); err != nil {
			ps.Check("admin.listen", err)
		} else {
			listens = append(listens, listenUse{addr: c.Admin.Listen, path: "admin.listen"})
		}
	}
	if c.Admin.PProf && c.Admin.Listen == "" {
		ps.Errorf("admin.pprof", "needs admin.listen: profiling is served on the HTTP listener")
	}
	checkClashes(ps, listens)
	c.validateServes(ps)
	c.validateRegistry(ps)
	c.Tuning.validate(ps)
	c.ParentChoice.validate(ps, k, c.Parents, c.Children)
	if c.ShutdownGrace < 0 {
		ps.Errorf("shutdown_grace", "must not be negative")
	}
	return ps.Err()
}

// listenUse is one listen address in the file, for clash checks.
type listenUse struct {
	addr string
	path string
	link bool // link listeners may share an address with each other
	udp  bool
}

// checkClashes reports two listeners on one port, unless both are link
// listeners (one port may serve several links).
func checkClashes(ps *daemon.Problems, uses []listenUse) {
	for i := range uses {
		for j := 0; j < i; j++ {
			a, b := uses[j], uses[i]
			if a.link && b.link && a.addr == b.addr {
				continue
			}
			if a.udp != b.udp {
				continue
			}
			if clash(a.addr, b.addr) {
				ps.Errorf(b.path, "port clash: %s is also used at %s", b.addr, a.path)
			}
		}
	}
}

// clash reports whether listening on a and on b would collide: the same
// port (":7000" and ":07000" too) on the same host or a wildcard host.
// IP addresses are compared as addresses ("::1" and "0:0::1" are one).
func clash(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil {
		return false
	}
	na, err1 := strconv.Atoi(pa)
	nb, err2 := strconv.Atoi(pb)
	if err1 != nil || err2 != nil || na != nb {
		return false
	}
	wild := func(h string) bool {
		ip, err := netip.ParseAddr(h)
		return h == "" || err == nil && ip.IsUnspecified()
	}
	if wild(ha) || wild(hb) {
		return true
	}
	ipa, err1 := netip.ParseAddr(ha)
	ipb, err2 := netip.ParseAddr(hb)
	if err1 == nil && err2 == nil {
		return ipa.Unmap() == ipb.Unmap()
	}
	return ha == hb
}

func (t Tuning) validate(ps *daemon.Problems) {
	if t.WindowSize < 256<<10 {
		ps.Errorf("tuning.window_size", "%d bytes is below the minimum of 256KiB", t.WindowSize)
	}
	if t.WindowSize > 1<<30 {
		ps.Errorf("tuning.window_size", "%d bytes is above the maximum of 1GiB", t.WindowSize)
	}
	positive := []struct {
		key string
		v   time.Duration
	}{
		{"keepalive_interval", t.KeepAliveInterval},
		{"write_timeout", t.WriteTimeout},
		{"hello_timeout", t.HelloTimeout},
		{"open_timeout", t.OpenTimeout},
		{"dial_timeout", t.DialTimeout},
		{"reconnect_min", t.ReconnectMin},
		{"reconnect_max", t.ReconnectMax},
	}
	for _, d := range positive {
		if d.v <= 0 {
			ps.Errorf("tuning."+d.key, "must be positive, like \"10s\"")
		}
	}
	if t.StreamCloseTimeout < 0 {
		ps.Errorf("tuning.stream_close_timeout", "must not be negative (0 turns it off)")
	}
	if t.IdleTimeout < 0 {
		ps.Errorf("tuning.idle_timeout", "must not be negative (0 turns it off)")
	}
	if t.PeerWriteTimeout < 0 {
		ps.Errorf("tuning.peer_write_timeout", "must not be negative (0 turns it off)")
	}
	if t.ReconnectMin > t.ReconnectMax {
		ps.Errorf("tuning.reconnect_min", "%s is above reconnect_max %s", t.ReconnectMin, t.ReconnectMax)
	}
	if t.DialTimeout > t.OpenTimeout && t.OpenTimeout > 0 {
		ps.Errorf("tuning.dial_timeout", "%s is above open_timeout %s: the entry would give up first", t.DialTimeout, t.OpenTimeout)
	}
	if t.AcceptBacklog <= 0 {
		ps.Errorf("tuning.accept_backlog", "must be positive")
	}
	for _, c := range []struct {
		key string
		v   int
	}{
		{"max_sessions", t.MaxSessions},
		{"max_sessions_per_link", t.MaxSessionsPerLink},
		{"max_sessions_per_origin", t.MaxSessionsPerOrigin},
		{"max_labels_per_link", t.MaxLabelsPerLink},
		{"max_routes", t.MaxRoutes},
		{"max_hellos", t.MaxHellos},
		{"max_hellos_per_source", t.MaxHellosPerSource},
		{"refusal_log_burst", t.RefusalLogBurst},
		{"handshake_burst", t.HandshakeBurst},
	} {
		if c.v <= 0 {
			ps.Errorf("tuning."+c.key, "must be positive")
		}
	}
	if t.ReconnectSpread <= 0 {
		ps.Errorf("tuning.reconnect_spread", "must be positive, like \"2s\"")
	}
	if !(t.MaxHandshakeRate > 0) {
		ps.Errorf("tuning.max_handshake_rate", "must be positive (new link connections a second)")
	}
	if t.TreeTimeout <= 0 {
		ps.Errorf("tuning.tree_timeout", "must be positive, like \"5s\"")
	}
	if t.TreeAnswerMax < 4<<10 || t.TreeAnswerMax > 64<<20 {
		ps.Errorf("tuning.tree_answer_max", "must be between 4KiB and 64MiB")
	}
}

// MuxTuning converts the tuning section for the mux package.
func (t Tuning) MuxTuning() mux.Tuning {
	m := mux.DefaultTuning()
	m.WindowSize = uint32(t.WindowSize)
	m.KeepAliveInterval = t.KeepAliveInterval
	m.WriteTimeout = t.WriteTimeout
	m.StreamCloseTimeout = t.StreamCloseTimeout
	m.AcceptBacklog = t.AcceptBacklog
	m.HelloTimeout = t.HelloTimeout
	m.OpenTimeout = t.OpenTimeout
	m.DialTimeout = t.DialTimeout
	m.IdleTimeout = t.IdleTimeout
	m.PeerWriteTimeout = t.PeerWriteTimeout // zero is off in both
	m.BackoffMin = t.ReconnectMin
	m.BackoffMax = t.ReconnectMax
	m.MaxSessions = t.MaxSessions
	m.MaxSessionsPerLink = t.MaxSessionsPerLink
	m.MaxSessionsPerOrigin = t.MaxSessionsPerOrigin
	m.MaxLabelsPerLink = t.MaxLabelsPerLink
	m.MaxRoutes = t.MaxRoutes
	m.MaxHellos = t.MaxHellos
	m.MaxHellosPerSource = t.MaxHellosPerSource
	m.RefusalLogBurst = t.RefusalLogBurst
	m.ReconnectSpread = t.ReconnectSpread
	m.MaxHandshakeRate = t.MaxHandshakeRate
	m.HandshakeBurst = t.HandshakeBurst
	m.TreeTimeout = t.TreeTimeout
	m.TreeAnswerMax = int(t.TreeAnswerMax)
	return m
}

// MuxConfig builds the node configuration, with the TLS material that
// Load loaded. extra adds in-process services (the epproxy's event
// service).
func (c *Config) MuxConfig(extra map[string]mux.Service) mux.Config {
	mc := mux.Config{Label: c.Label, Role: c.kind.Role, Tuning: c.Tuning.MuxTuning(), Services: map[string]mux.Service{}}
	mc.Parents = c.ParentChoice.mux()
	if c.tlsStore != nil {
		mc.TLS = c.tlsStore
	}
	for _, l := range c.Parents {
		mc.Links = append(mc.Links, l.linkConfig(true))
	}
	for _, l := range c.Children {
		mc.Links = append(mc.Links, l.linkConfig(false))
	}
	for i, s := range c.Services {
		mc.Services[s.Name] = mux.Service{Addrs: s.Addrs, Allow: s.Allow, Source: s.Source,
			Rules: c.rules(fmt.Sprintf("services[%d].rules", i), s.Rules, false)}
	}
	mc.Serves = c.Serves
	mc.RegisterEndpoints, mc.EndpointTTL, mc.MaxEndpoints = c.RegisterEndpoints, c.EndpointTTL, c.MaxEndpoints
	mc.ServesRules = c.servesRules()
	for name, s := range extra {
		mc.Services[name] = s
	}
	return mc
}
