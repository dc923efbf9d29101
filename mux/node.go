package mux

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// Node is one daemon's place in the tree: its links, its routing table and
// the sessions it carries. New binds the listen sockets; Serve runs the
// node until its context ends; Shutdown drains and releases everything.
type Node struct {
	cfg Config
	tun Tuning
	log *logrus.Entry

	listeners []*linkListener
	entries   []*entry

	acceptCtx  context.Context // ends when the node stops accepting
	stopAccept context.CancelFunc
	ctx        context.Context // ends when the node aborts what is left
	cancel     context.CancelFunc

	mu       sync.Mutex
	links    map[string]*link    // links that are up, by peer label
	reserved map[string]bool     // peer labels in a handshake
	below    map[string][]string // labels told by each child, by child label
	routes   map[string]string   // label -> child label that leads to it
	path     []string            // the active parent's label and its path to the root
	sessions map[uint64]Header
	warned   map[string]bool // routing oddities already logged
	draining bool
	dead     bool // no goroutine may be started
	idle     chan struct{}

	wg        sync.WaitGroup // every goroutine the node starts
	serveOnce sync.Once
	shutOnce  sync.Once
	shutErr   error
}

type linkListener struct {
	ln    net.Listener
	addr  string
	links map[string]LinkConfig // by peer label
}

type entry struct {
	ln      net.Listener
	name    string
	dest    string
	service string
}

// New checks cfg, binds every link listen address and returns the node.
// log receives everything the node logs; fields "component" name the part.
func New(cfg Config, log *logrus.Entry) (*Node, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("mux config: %w", errors.Join(errs...))
	}
	n := &Node{
		cfg:      cfg,
		tun:      cfg.Tuning.withDefaults(),
		log:      log.WithField("node", cfg.Label),
		links:    map[string]*link{},
		reserved: map[string]bool{},
		below:    map[string][]string{},
		routes:   map[string]string{},
		sessions: map[uint64]Header{},
	}
	n.acceptCtx, n.stopAccept = context.WithCancel(context.Background())
	n.ctx, n.cancel = context.WithCancel(context.Background())
	byAddr := map[string]*linkListener{}
	for _, lc := range cfg.Links {
		if lc.Listen == "" {
			continue
		}
		ll := byAddr[lc.Listen]
		if ll == nil {
			ln, err := net.Listen("tcp", lc.Listen)
			if err != nil {
				n.closeListeners()
				return nil, fmt.Errorf("listen for link %s: %w", lc.Peer, err)
			}
			ll = &linkListener{ln: ln, addr: lc.Listen, links: map[string]LinkConfig{}}
			byAddr[lc.Listen] = ll
			n.listeners = append(n.listeners, ll)
		}
		ll.links[lc.Peer] = lc
	}
	return n, nil
}

func (n *Node) closeListeners() {
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
	for _, ll := range n.listeners {
		if _, ok := ll.links[peer]; ok {
			return ll.ln.Addr()
		}
	}
	return nil
}

// AddEntry makes ln an entry: every connection accepted on it becomes a
// session to service at dest. Call before Serve. The node closes ln.
func (n *Node) AddEntry(ln net.Listener, name, dest, service string) {
	n.entries = append(n.entries, &entry{ln: ln, name: name, dest: dest, service: service})
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

// Serve runs the node: link listeners, dialled links with their reconnect
// loops, and entries. It returns nil when ctx ends or Shutdown begins, once
// nothing new is accepted any more; established links and sessions go on
// until Shutdown, which the caller must call.
func (n *Node) Serve(ctx context.Context) error {
	started := false
	n.serveOnce.Do(func() { started = true })
	if !started {
		return errors.New("serve called twice")
	}
	n.log.WithField("component", "node").Infof("serving as %s", n.cfg.Role)
	for _, ll := range n.listeners {
		ll := ll
		n.spawn(func() { n.acceptLinks(ll) })
	}
	for _, lc := range n.cfg.Links {
		if lc.Dial != "" {
			lc := lc
			n.spawn(func() { n.dialLoop(lc) })
		}
	}
	for _, e := range n.entries {
		e := e
		n.spawn(func() { n.acceptEntry(e) })
	}
	select {
	case <-ctx.Done():
	case <-n.acceptCtx.Done():
	}
	n.stopAccepting()
	return nil
}

func (n *Node) stopAccepting() {
	n.stopAccept()
	n.closeListeners()
	n.mu.Lock()
	n.draining = true
	n.mu.Unlock()
}

// Shutdown stops accepting links and sessions, waits until the sessions
// end or ctx ends, then aborts what is left, closes every link and waits
// for every goroutine of the node (at most Tuning.ShutdownAbortWait more).
// It returns ctx's error when sessions had to be aborted. Idempotent.
func (n *Node) Shutdown(ctx context.Context) error {
	n.shutOnce.Do(func() { n.shutErr = n.shutdown(ctx) })
	return n.shutErr
}

func (n *Node) shutdown(ctx context.Context) error {
	log := n.log.WithField("component", "node")
	n.stopAccepting()
	var forced error
	if left := n.waitSessions(ctx); left > 0 {
		forced = ctx.Err()
		log.Warnf("shutdown: aborting %d sessions left after the grace period", left)
	}
	n.cancel()
	n.mu.Lock()
	n.dead = true
	links := make([]*link, 0, len(n.links))
	for _, l := range n.links {
		links = append(links, l)
	}
	n.mu.Unlock()
	for _, l := range links {
		l.close()
	}
	done := make(chan struct{})
	go func() {
		n.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(n.tun.ShutdownAbortWait):
		log.Error("shutdown: goroutines still running after the abort wait")
		return errors.New("shutdown: goroutines still running")
	}
	log.Info("shut down")
	return forced
}

// waitSessions waits until no session is left or ctx ends, and returns how
// many are left.
func (n *Node) waitSessions(ctx context.Context) int {
	for {
		n.mu.Lock()
		left := len(n.sessions)
		if left == 0 {
			n.mu.Unlock()
			return 0
		}
		if n.idle == nil {
			n.idle = make(chan struct{})
		}
		idle := n.idle
		n.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			n.mu.Lock()
			left = len(n.sessions)
			n.mu.Unlock()
			return left
		}
	}
}

// admit records a new session; it fails when the node is draining or full.
func (n *Node) admit(h Header) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.draining:
		return ErrShutdown
	case len(n.sessions) >= n.tun.MaxSessions:
		return fmt.Errorf("session limit of %d reached", n.tun.MaxSessions)
	}
	if _, dup := n.sessions[h.ID]; dup {
		return fmt.Errorf("session id %s already in use here", h.IDString())
	}
	n.sessions[h.ID] = h
	return nil
}

func (n *Node) release(id uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.sessions, id)
	if len(n.sessions) == 0 && n.idle != nil {
		close(n.idle)
		n.idle = nil
	}
}

// Sessions returns how many sessions the node carries now.
func (n *Node) Sessions() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.sessions)
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

// Routes returns the routing table: every label known below this node and
// the child label that leads to it.
func (n *Node) Routes() map[string]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string]string, len(n.routes))
	for k, v := range n.routes {
		out[k] = v
	}
	return out
}

// PathToRoot returns the active parent's label and its path to the root,
// as the parent last told it; empty at the root or while no parent is up.
func (n *Node) PathToRoot() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.path...)
}

// activeParentLocked is the first configured parent whose link is up.
func (n *Node) activeParentLocked() *link {
	for _, lc := range n.cfg.Links {
		if lc.Parent {
			if l := n.links[lc.Peer]; l != nil {
				return l
			}
		}
	}
	return nil
}

// nextHop chooses the link towards dest for a session that came in on
// from (nil for a local entry). A session never goes back up to a parent
// it came from.
func (n *Node) nextHop(dest string, from *link) (*link, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if child, ok := n.routes[dest]; ok {
		if l := n.links[child]; l != nil && l != from {
			return l, nil
		}
	}
	if from != nil && from.cfg.Parent {
		return nil, fmt.Errorf("%s is not below %s", dest, n.cfg.Label)
	}
	if p := n.activeParentLocked(); p != nil {
		return p, nil
	}
	if n.cfg.Role == RoleRoot {
		return nil, fmt.Errorf("%s is unknown to the root %s", dest, n.cfg.Label)
	}
	return nil, fmt.Errorf("no parent link of %s is up", n.cfg.Label)
}

// tellLabels is what this node tells its parents: its own label and every
// label below it, sorted.
func (n *Node) tellLabelsLocked() []string {
	out := make([]string, 0, 1+len(n.routes))
	out = append(out, n.cfg.Label)
	rest := make([]string, 0, len(n.routes))
	for l := range n.routes {
		rest = append(rest, l)
	}
	sort.Strings(rest)
	return append(out, rest...)
}

// tellLabels is tellLabelsLocked under the node's lock.
func (n *Node) tellLabels() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.tellLabelsLocked()
}

// tellReply is the TELL reply to a child: this node's label and its path
// to the root.
func (n *Node) tellReply() ctrlMsg {
	n.mu.Lock()
	defer n.mu.Unlock()
	return ctrlMsg{Type: ctrlTellReply, Labels: append([]string{n.cfg.Label}, n.path...)}
}

// setBelow records the labels a child told and, when the table changed,
// tells the parents.
func (n *Node) setBelow(child string, labels []string) {
	n.mu.Lock()
	if labels == nil {
		delete(n.below, child)
	} else {
		n.below[child] = labels
	}
	changed := n.recomputeLocked()
	n.mu.Unlock()
	if changed {
		n.tellParents()
	}
}

// recomputeLocked rebuilds the routing table from what the children told,
// logs what changed and reports whether anything did.
func (n *Node) recomputeLocked() bool {
	log := n.log.WithField("component", "routing")
	children := make([]string, 0, len(n.below))
	for c := range n.below {
		children = append(children, c)
	}
	sort.Strings(children)
	routes := map[string]string{}
	odd := map[string]bool{} // what is warned about, so each is warned once
	for _, c := range children {
		for _, l := range n.below[c] {
			switch prev, dup := routes[l]; {
			case l == n.cfg.Label:
				key := c + " tells " + l
				if odd[key] = true; !n.warned[key] {
					log.WithField("l", c).Warnf("child tells this node's own label %s; ignored", l)
				}
			case dup:
				key := l + " by " + prev + " and " + c
				if odd[key] = true; !n.warned[key] {
					log.WithField("l", c).Warnf("label %s is told by both %s and %s; using %s", l, prev, c, prev)
				}
			default:
				routes[l] = c
			}
		}
	}
	n.warned = odd
	changed := false
	for l, via := range routes {
		if old, ok := n.routes[l]; !ok || old != via {
			log.WithFields(logrus.Fields{"label": l, "via": via}).Info("route added")
			changed = true
		}
	}
	for l, via := range n.routes {
		if _, ok := routes[l]; !ok {
			log.WithFields(logrus.Fields{"label": l, "via": via}).Info("route removed")
			changed = true
		}
	}
	n.routes = routes
	return changed
}

// refreshPath takes the path to the root from the active parent, as that
// parent last told it.
func (n *Node) refreshPath() {
	n.mu.Lock()
	var path []string
	if p := n.activeParentLocked(); p != nil {
		path = p.path
	}
	n.mu.Unlock()
	n.setPath(path)
}

// setPath records this node's path to the root (its active parent's label
// and that parent's path) and, when it changed, tells the children.
func (n *Node) setPath(path []string) {
	n.mu.Lock()
	same := len(path) == len(n.path)
	for i := 0; same && i < len(path); i++ {
		same = path[i] == n.path[i]
	}
	if same {
		n.mu.Unlock()
		return
	}
	n.path = append([]string(nil), path...)
	for _, l := range n.links {
		if !l.cfg.Parent {
			l.wantTell()
		}
	}
	n.mu.Unlock()
	n.log.WithFields(logrus.Fields{"component": "routing", "path": joinLabels(path)}).Info("path to the root changed")
}

// tellParents asks every parent link that is up to send a TELL.
func (n *Node) tellParents() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, l := range n.links {
		if l.cfg.Parent {
			l.wantTell()
		}
	}
}

func (n *Node) newID() uint64 {
	for {
		if id := rand.Uint64(); id != 0 {
			return id
		}
	}
}

func joinLabels(ls []string) string { return strings.Join(ls, ",") }
