package mux

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// Node is one daemon's place in the tree: its links, its routing table and
// the sessions it carries. New binds the listen sockets; Serve runs the
// node until its context ends; Shutdown drains and releases everything.
type Node struct {
	cfg Config // Label, Role, TLS and Version are fixed; see reconfig.go for the rest
	log *logrus.Entry

	listeners []*linkListener
	entries   []*entry

	acceptCtx  context.Context // ends when the node stops accepting
	stopAccept context.CancelFunc
	ctx        context.Context // ends when the node aborts what is left
	cancel     context.CancelFunc

	table     *routingTable                   // what the children told; its own lock
	refusals  *refusalLog                     // link connections refused, flood-proof
	denials   *refusalLog                     // sessions refused for their origin, flood-proof
	ancestors atomic.Pointer[map[string]bool] // the labels of path, read without the lock
	errs      errorRing                       // recent errors about links, for Status
	started   time.Time

	mu         sync.Mutex
	links      map[string]*link      // links that are up, by peer label
	linkStates map[string]*linkState // every configured link, up or down, by peer label
	reserved   map[string]bool       // peer labels in a handshake
	path       []string              // the active parent's label and its path to the root
	sessions   map[uint64]sessionRec
	perLink    map[string]int // sessions by the link they arrived through
	perOrigin  map[string]int // sessions by origin
	draining   bool
	dead       bool // no goroutine may be started
	idle       chan struct{}

	wg        sync.WaitGroup // every goroutine the node starts
	serveOnce sync.Once
	shutOnce  sync.Once
	shutErr   error

	// Handing the node's place over to a successor process, or taking it
	// over from a predecessor (handover.go).
	handingOver  atomic.Bool
	standby      map[string]*link // successors' links beside their predecessors', by peer label; guarded by mu
	retiring     map[string]*link // predecessors' links another took the place of, still finishing their sessions, by peer label; guarded by mu
	parentUp     chan struct{}    // closed when a parent link is first up
	parentUpOnce sync.Once

	// The status query of the tree (tree.go).
	tree treeState

	// Sessions ended, by outcome (outcome.go).
	outcomes outcomeCounts

	// What a reconfiguration changes while the node runs (reconfig.go).
	// cfg.Links is guarded by mu; cfg.Services and cfg.Tuning are not
	// used: the ones in force are services and tunp.
	tunp      atomic.Pointer[Tuning]                  // the tuning in force
	services  atomic.Pointer[map[string]*serviceSlot] // the services in force
	parentSet atomic.Pointer[map[string]bool]         // the labels of the configured parents
	lnMu      sync.Mutex                              // guards listeners and entries; taken alone or inside mu, never around it
	dialStop  map[string]context.CancelFunc           // ends the dial loop of each dialled link, by peer label; guarded by mu
	serving   bool                                    // Serve has started the node's loops; guarded by mu
	reconfMu  sync.Mutex                              // one reconfiguration at a time

	// Sessions alive here and how to abort each, so that a shutdown's
	// abort names itself on every hop (sessionlog.go).
	liveMu  sync.Mutex
	live    map[uint64]func(error)
	liveSeq uint64

	// The address form of sessions (dest.go): this node's own networks,
	// and the sessions refused for a destination outside them.
	serves      []Network
	destDenials *refusalLog

	// Rules.
	ruleLog *refusalLog // sessions denied by rules, flood-proof, for Stats

	// Parent selection (parents.go).
	parents *parentSet // guarded by mu

	// The endpoint registry (registry.go): on a node that learns its
	// endpoints, the client addresses of its entries.
	reg *endpointReg

	// Resolved names (resolve.go): sessions denied for every address
	// their destination's name resolved to.
	resolveDenied atomic.Uint64

	// The users of address entries (entryauth.go): failed
	// authentications by source address, and their log.
	authFails authFails
	authLog   *refusalLog
}

type linkListener struct {
	ln   net.Listener
	addr string
	gate *helloGate                  // caps the hellos in progress
	set  atomic.Pointer[listenLinks] // the links this port serves, replaced whole by a reconfiguration
}

// listenLinks is what one listen address serves.
type listenLinks struct {
	links  map[string]LinkConfig // by peer label
	plain  bool                  // some link here is Plaintext
	secure bool                  // some link here is on TLS
	creds  Credentials           // the certificate this port shows: the link's own when it is the only TLS link, else the node's
}

type entry struct {
	ln      net.Listener
	name    string
	dest    string
	service string

	conns piece // its sessions, aborted when a reconfiguration removes it and they outlast the grace

	addr *AddrEntry // an entry that takes the destination from its client; nil: a static entry
	gate *helloGate // an address entry's requests and opens in progress, capped

	// Rules.
	rules ACL
}

// New checks cfg, binds every link listen address and returns the node.
// log receives everything the node logs; fields "component" name the part.
func New(cfg Config, log *logrus.Entry) (*Node, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("mux config: %w", errors.Join(errs...))
	}
	n := &Node{
		cfg:        cfg,
		log:        log.WithField("node", cfg.Label),
		links:      map[string]*link{},
		reserved:   map[string]bool{},
		sessions:   map[uint64]sessionRec{},
		perLink:    map[string]int{},
		perOrigin:  map[string]int{},
		started:    time.Now(),
		linkStates: map[string]*linkState{},
		dialStop:   map[string]context.CancelFunc{},
		parentUp:   make(chan struct{}),
		parents:    newParentSet(cfg),
	}
	n.cfg.Links = append([]LinkConfig(nil), cfg.Links...)
	n.cfg.Services = nil // see services
	tun := cfg.Tuning.withDefaults()
	n.tunp.Store(&tun)
	n.setServices(cfg.Services)
	for _, lc := range cfg.Links {
		n.linkStates[lc.Peer] = &linkState{}
	}
	n.refusals = newRefusalLog(n.log.WithField("component", "link"), "link connections refused", n.tuning().RefusalLogBurst).follow(n)
	n.denials = newRefusalLog(n.log.WithField("component", "session"), "sessions refused for a forged origin", n.tuning().RefusalLogBurst).follow(n)
	n.ruleLog = newRefusalLogAt(n.log.WithField("component", "session"), "sessions denied by rules", n.tuning().RefusalLogBurst, logrus.InfoLevel).follow(n)
	n.table = newRoutingTable(cfg.Label, n.log.WithField("component", "routing"), n.tuning().MaxLabelsPerLink, n.tuning().MaxRoutes)
	n.setParents(cfg.Links)
	n.initAccept(cfg.Links)
	n.table.setAcceptLabels(cfg.Links)
	n.destDenials = newRefusalLog(n.log.WithField("component", "session"), "sessions refused for a destination not served here", n.tuning().RefusalLogBurst).follow(n)
	n.authLog = newRefusalLogAt(n.log.WithField("component", "entry"), "failed authentications", n.tuning().RefusalLogBurst, logrus.WarnLevel).follow(n)
	n.initServes()
	n.initRegistry()
	n.table.forbidden = func(l string) bool {
		if (*n.parentSet.Load())[l] {
			return true
		}
		anc := n.ancestors.Load()
		return anc != nil && (*anc)[l]
	}
	n.acceptCtx, n.stopAccept = context.WithCancel(context.Background())
	n.ctx, n.cancel = context.WithCancel(context.Background())
	for _, lc := range listenEach(cfg.Links) {
		if lc.Listen == "" || n.listenerFor(lc.Listen) != nil {
			continue
		}
		ln, err := n.listen(lc.Listen)
		if err != nil {
			n.closeListeners()
			return nil, fmt.Errorf("listen for link %s: %w", lc.Peer, err)
		}
		ll := &linkListener{ln: ln, addr: lc.Listen,
			gate: &helloGate{max: n.tuning().MaxHellos, perSource: n.tuning().MaxHellosPerSource}}
		ll.set.Store(n.listenLinksAt(lc.Listen, cfg.Links))
		n.listeners = append(n.listeners, ll)
	}
	return n, nil
}

// listenLinksAt is what the listen address addr serves among links.
func (n *Node) listenLinksAt(addr string, links []LinkConfig) *listenLinks {
	s := &listenLinks{links: map[string]LinkConfig{}}
	tlsLinks := 0
	for _, lc := range links {
		if !lc.listensOn(addr) {
			continue
		}
		s.links[lc.Peer] = lc
		if lc.Plaintext {
			s.plain = true
			continue
		}
		s.secure = true
		tlsLinks++
		s.creds = n.credsFor(lc)
	}
	if tlsLinks > 1 {
		s.creds = n.cfg.TLS
	}
	return s
}

// listenerFor returns the link listener of the configured address addr,
// or nil.
func (n *Node) listenerFor(addr string) *linkListener {
	n.lnMu.Lock()
	defer n.lnMu.Unlock()
	for _, ll := range n.listeners {
		if ll.addr == addr {
			return ll
		}
	}
	return nil
}

func (n *Node) closeListeners() {
	n.lnMu.Lock()
	defer n.lnMu.Unlock()
	for _, ll := range n.listeners {
		_ = ll.ln.Close()
	}
	for _, e := range n.entries {
		_ = e.ln.Close()
	}
}

// Label returns the node's label.
func (n *Node) Label() string { return n.cfg.Label }

// LinkAddr returns the bound address of the listener that serves the link
// to peer, or nil when that link is dialled.
func (n *Node) LinkAddr(peer string) net.Addr {
	n.lnMu.Lock()
	defer n.lnMu.Unlock()
	for _, ll := range n.listeners {
		if _, ok := ll.set.Load().links[peer]; ok {
			return ll.ln.Addr()
		}
	}
	return nil
}

// AddEntry makes ln an entry: every connection accepted on it becomes a
// session to service at dest. Before Serve, or while the node serves (a
// reconfiguration; see RemoveEntry). The node closes ln.
func (n *Node) AddEntry(ln net.Listener, name, dest, service string) {
	n.AddEntryWith(ln, EntryConfig{Name: name, Dest: dest, Service: service})
}

// addEntry adds e, before Serve or while the node serves.
func (n *Node) addEntry(e *entry) {
	ln := e.ln
	n.mu.Lock()
	serving, stopping := n.serving, n.draining || n.dead
	n.mu.Unlock()
	if stopping {
		_ = ln.Close()
		return
	}
	n.lnMu.Lock()
	n.entries = append(n.entries, e)
	n.lnMu.Unlock()
	if serving && !n.spawn(func() { n.acceptEntry(e) }) {
		_ = ln.Close()
	}
}

// spawn runs f in a goroutine the node waits for. It returns false, without
// running f, once the node is past the point of starting goroutines.
func (n *Node) spawn(f func()) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.dead {
		return false
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
	return true
}

// Links returns the labels of the neighbours whose links are up, sorted.
func (n *Node) Links() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, 0, len(n.links))
	for p := range n.links {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
