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
	"fmt"
	"path/filepath"
	"strings"
	"time"

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
