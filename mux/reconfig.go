package mux

import (
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// This file holds the reconfiguration of a running node: links, services
// and tuning replaced by Reconfigure, entries added and removed by AddEntry
// and RemoveEntry. What did not change is left alone, with its sessions;
// what was removed takes no new session, and its sessions drain for a
// grace period and are then aborted (reconfdrain.go). What is in force is
// in inforce.go.

// Reconfigure replaces the node's links, services and tuning with cfg's,
// while the node serves. cfg must pass Validate, and keep the node's
// Label, Role and TLS: those need a new node. It returns one line per
// change applied ("link to X added (dial ADDR)", "service Y removed",
// ...); the caller logs them.
//
//   - A link, a service or a tuning field compared equal (every field of
//     LinkConfig, every field of Service with its Handler compared by
//     identity) is left as it is, and so are its sessions.
//   - A link removed (or changed: removed, then added) takes no new
//     session at once; it closes when its sessions are done, or when
//     grace ends, which aborts what is left. Its dial loop stops; a
//     listen address left without links stops listening.
//   - A service removed (or changed) is refused to new sessions at once;
//     its sessions are aborted when grace ends.
//   - The tuning applies to the sessions and link connections that begin
//     afterwards, and at once to the caps (sessions, labels, routes,
//     hellos, refusal log).
//
// New listen addresses are bound first: when one cannot be bound, nothing
// is changed and the error says why.
func (n *Node) Reconfigure(cfg Config, grace time.Duration) ([]string, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("mux config: %w", errors.Join(errs...))
	}
	var fixed []string
	if cfg.Label != n.cfg.Label {
		fixed = append(fixed, fmt.Sprintf("label %s -> %s", n.cfg.Label, cfg.Label))
	}
	if cfg.Role != n.cfg.Role {
		fixed = append(fixed, fmt.Sprintf("role %s -> %s", n.cfg.Role, cfg.Role))
	}
	if !reflect.DeepEqual(cfg.TLS, n.cfg.TLS) {
		fixed = append(fixed, "the node's TLS credentials")
	}
	if !reflect.DeepEqual(cfg.Serves, n.cfg.Serves) {
		fixed = append(fixed, "the networks it serves")
	}
	if !reflect.DeepEqual(cfg.ServesRules, n.cfg.ServesRules) {
		fixed = append(fixed, "the rules on the networks it serves")
	}
	if len(fixed) > 0 {
		return nil, fmt.Errorf("%w %s", ErrRestartNeeded, strings.Join(fixed, ", "))
	}

	n.reconfMu.Lock()
	defer n.reconfMu.Unlock()
	n.mu.Lock()
	oldLinks := append([]LinkConfig(nil), n.cfg.Links...)
	serving, stopping := n.serving, n.draining || n.dead
	n.mu.Unlock()
	if stopping {
		return nil, ErrShutdown
	}
	if !serving {
		return nil, errors.New("reconfigure: the node is not serving yet")
	}

	// The links: by peer, equal or not.
	oldBy := map[string]LinkConfig{}
	for _, lc := range oldLinks {
		oldBy[lc.Peer] = lc
	}
	newBy := map[string]LinkConfig{}
	for _, lc := range cfg.Links {
		newBy[lc.Peer] = lc
	}
	var removed, added []LinkConfig
	for _, lc := range oldLinks {
		if nl, ok := newBy[lc.Peer]; !ok || !sameLink(lc, nl) {
			removed = append(removed, lc)
		}
	}
	for _, lc := range cfg.Links {
		if ol, ok := oldBy[lc.Peer]; !ok || !sameLink(ol, lc) {
			added = append(added, lc)
		}
	}

	// Bind the new listen addresses before anything changes.
	var fresh []*linkListener
	freshAt := map[string]bool{}
	for _, lc := range listenEach(added) {
		if lc.Listen == "" || freshAt[lc.Listen] || n.listenerFor(lc.Listen) != nil {
			continue
		}
		ln, err := net.Listen("tcp", lc.Listen)
		if err != nil {
			for _, ll := range fresh {
				_ = ll.ln.Close()
			}
			return nil, fmt.Errorf("listen for link %s: %w", lc.Peer, err)
		}
		t := n.tuning()
		fresh = append(fresh, &linkListener{ln: ln, addr: lc.Listen,
			gate: &helloGate{max: t.MaxHellos, perSource: t.MaxHellosPerSource}})
		freshAt[lc.Listen] = true
	}

	var changes []string
	// Tuning first: the links and sessions started below use it.
	tun := cfg.Tuning.withDefaults()
	if !reflect.DeepEqual(tun, *n.tuning()) {
		n.tunp.Store(&tun)
		n.applyCaps(tun)
	}

	// Links.
	var retired []*link
	n.mu.Lock()
	n.cfg.Links = append([]LinkConfig(nil), cfg.Links...)
	for _, lc := range removed {
		delete(n.linkStates, lc.Peer)
		if stop := n.dialStop[lc.Peer]; stop != nil {
			stop()
			delete(n.dialStop, lc.Peer)
		}
		if l := n.links[lc.Peer]; l != nil && l.retired.CompareAndSwap(false, true) {
			retired = append(retired, l)
		}
	}
	for _, lc := range added {
		n.linkStates[lc.Peer] = &linkState{}
	}
	n.mu.Unlock()
	n.setParents(cfg.Links)
	changes = append(changes, n.reconfigureAccept(cfg.Links)...)
	changes = append(changes, n.reconfigureParents(cfg)...)
	var gone []*linkListener
	n.lnMu.Lock()
	n.listeners = append(n.listeners, fresh...)
	kept := n.listeners[:0]
	for _, ll := range n.listeners {
		set := n.listenLinksAt(ll.addr, cfg.Links)
		if len(set.links) == 0 {
			gone = append(gone, ll)
			continue
		}
		ll.set.Store(set)
		kept = append(kept, ll)
	}
	clear(n.listeners[len(kept):])
	n.listeners = kept
	n.lnMu.Unlock()
	for _, ll := range gone {
		_ = ll.ln.Close()
	}
	for _, lc := range removed {
		if nl, ok := newBy[lc.Peer]; ok {
			changes = append(changes, fmt.Sprintf("link to %s changed (%s)", lc.Peer, linkWhere(nl)))
			continue
		}
		changes = append(changes, fmt.Sprintf("link to %s removed", lc.Peer))
	}
	for _, lc := range added {
		if _, ok := oldBy[lc.Peer]; !ok {
			changes = append(changes, fmt.Sprintf("link to %s added (%s)", lc.Peer, linkWhere(lc)))
		}
		if lc.Plaintext {
			n.log.WithFields(logrus.Fields{"component": "link", "l": lc.Peer}).Warn("link is insecure_plaintext: its peer is not authenticated and its traffic is not encrypted")
		}
	}
	for _, ll := range fresh {
		ll := ll
		if !n.spawn(func() { n.acceptLinks(ll) }) {
			_ = ll.ln.Close()
		}
	}
	for _, lc := range added {
		if lc.Dial != "" {
			n.startDial(lc)
		}
	}
	for _, l := range retired {
		l := l
		if !n.spawn(func() { n.drainLink(l, grace) }) {
			l.close()
		}
	}
	if len(removed) > 0 || len(added) > 0 {
		n.refreshPath()
	}

	// Services.
	old := *n.services.Load()
	next := make(map[string]*serviceSlot, len(cfg.Services))
	for name, s := range cfg.Services {
		if o, ok := old[name]; ok && sameService(o.svc, s) {
			next[name] = o
			continue
		}
		next[name] = &serviceSlot{svc: s}
		if _, ok := old[name]; ok {
			changes = append(changes, fmt.Sprintf("service %s changed", name))
		} else {
			changes = append(changes, fmt.Sprintf("service %s added", name))
		}
	}
	n.services.Store(&next)
	for name, o := range old {
		if next[name] == o {
			continue
		}
		if _, ok := next[name]; !ok {
			changes = append(changes, fmt.Sprintf("service %s removed", name))
		}
		o := o
		n.spawn(func() { o.conns.drain(n.ctx, grace) })
	}
	return changes, nil
}

// RemoveEntry stops the entry name from listening at once; its sessions
// drain for grace and are then aborted. It reports whether the node had
// that entry.
func (n *Node) RemoveEntry(name string, grace time.Duration) bool {
	n.lnMu.Lock()
	var gone []*entry // one per listen address of the entry
	kept := n.entries[:0:0]
	for _, x := range n.entries {
		if x.name == name {
			gone = append(gone, x)
			continue
		}
		kept = append(kept, x)
	}
	n.entries = kept
	n.lnMu.Unlock()
	for _, e := range gone {
		_ = e.ln.Close()
		n.spawn(func() { e.conns.drain(n.ctx, grace) })
	}
	return len(gone) > 0
}

// EntryAddr returns the bound address of the entry name, or nil.
func (n *Node) EntryAddr(name string) net.Addr {
	n.lnMu.Lock()
	defer n.lnMu.Unlock()
	for _, e := range n.entries {
		if e.name == name {
			return e.ln.Addr()
		}
	}
	return nil
}

// linkWhere says how a link is reached, for the change lines.
func linkWhere(lc LinkConfig) string {
	side := "child"
	if lc.Parent {
		side = "parent"
	}
	if lc.Dial != "" {
		return side + ", dial " + lc.Dial
	}
	return side + ", listen " + lc.Listen
}

// sameLink reports whether two link configurations are the same link: every
// field alike, the credentials too (the same value, or equal ones), but
// the accepted networks and labels, which change without replacing the link
// (accept.go).
func sameLink(a, b LinkConfig) bool {
	a.AcceptNetworks, b.AcceptNetworks = nil, nil
	a.AcceptLabels, b.AcceptLabels = nil, nil
	return reflect.DeepEqual(a, b)
}

// sameService reports whether two services are alike: every field, and the
// same Handler function, compared by its code (Go compares functions no
// other way): a caller that keeps a service passes the same Handler, as
// chain does with the in-process services it built once.
func sameService(a, b Service) bool {
	if (a.Handler == nil) != (b.Handler == nil) {
		return false
	}
	if a.Handler != nil && reflect.ValueOf(a.Handler).Pointer() != reflect.ValueOf(b.Handler).Pointer() {
		return false
	}
	a.Handler, b.Handler = nil, nil
	return reflect.DeepEqual(a, b)
}
