package chain

import (
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/internal/daemon"
	"github.com/relaychain/relaychain/internal/version"
	"github.com/relaychain/relaychain/mux"
)

// This file holds the reload of a running chain daemon's whole
// configuration on SIGHUP (daemon.Spec.Apply): the new file was loaded and
// checked; what a running node cannot change refuses it; the rest is
// applied, each change logged in one line, and a summary.

// liveKeys are the top-level keys of the file that a reload applies to the
// running node. Any other key (label, tls, admin, events, and keys added
// later until they are taught here) needs a restart when it changes.
var liveKeys = map[string]bool{
	"log":            true, // daemon.reloadAll applies it
	"parents":        true,
	"children":       true,
	"services":       true,
	"entries":        true,
	"tuning":         true,
	"shutdown_grace": true,
	// parent_selection and the other parent_* keys (ParentChoice, inline):
	// the node takes them over, keeping what it measured of each parent.
	"ParentChoice": true,
}

// liveNode is a chain daemon's node while Run runs, for reloads.
type liveNode struct {
	mu    sync.Mutex // one reload at a time; guards cur
	cur   *Config    // the configuration in force
	node  *mux.Node
	extra map[string]mux.Service // the in-process services, built once by Hooks.Services
	log   *logrus.Entry
}

// runs holds the running daemons by the configuration Run was given.
var runs sync.Map // *Config -> *liveNode

// current returns the configuration in force.
func (r *liveNode) current() *Config {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

// Apply reloads the configuration of the daemon that Run runs with cfg:
// next (loaded and checked) replaces it where it differs. Changes that a
// running node cannot take (restartNeeded) refuse it whole; so does a
// listen address that cannot be bound. Each change applied is logged in
// one line, then a summary, on the running node's logger. An entry whose
// port is freed by an entry that goes, and cannot be bound after all, is
// logged and left out; the rest stays applied.
func Apply(cfg, next *Config, _ *logrus.Logger) error {
	v, ok := runs.Load(cfg)
	if !ok {
		return errors.New("configuration not reloaded: the node is not liveNode")
	}
	return v.(*liveNode).apply(next)
}

func (r *liveNode) apply(next *Config) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.cur
	log := r.log
	if why := restartNeeded(cur, next); len(why) > 0 {
		for _, w := range why {
			log.Errorf("reload refused: %s needs a restart", w)
		}
		return fmt.Errorf("configuration refused, the one in force is kept: a restart is needed to change %s", strings.Join(why, ", "))
	}
	next.adoptTLS(cur)
	cur.ReloadTLS(daemon.Component(log.Logger, "tls"))

	// Entries: by name; a changed one is removed, then added. The
	// port_map entries are bound by the registry keeper: they need a
	// restart to change (registry.go).
	if !reflect.DeepEqual(portMaps(cur), portMaps(next)) {
		log.Error("reload refused: the port_map entries need a restart to change")
		return fmt.Errorf("configuration refused, the one in force is kept: a restart is needed to change the port_map entries")
	}
	curE := map[string]Entry{}
	for _, e := range cur.Entries {
		if e.Kind != KindPortMap {
			curE[e.Name] = e
		}
	}
	nextE := map[string]Entry{}
	for _, e := range next.Entries {
		if e.Kind != KindPortMap {
			nextE[e.Name] = e
		}
	}
	var goneE, newE []Entry
	freed := map[string]bool{} // listen addresses of entries that go
	for _, e := range cur.Entries {
		if e.Kind == KindPortMap {
			continue
		}
		if ne, ok := nextE[e.Name]; !ok || !reflect.DeepEqual(ne, e) {
			goneE = append(goneE, e)
			for _, a := range e.Listen {
				freed[a] = true
			}
		}
	}
	for _, e := range next.Entries {
		if e.Kind == KindPortMap {
			continue
		}
		if ce, ok := curE[e.Name]; !ok || !reflect.DeepEqual(ce, e) {
			newE = append(newE, e)
		}
	}
	// Bind the new entries' addresses first, except those an entry that
	// goes still holds: a port that cannot be bound refuses the reload.
	type entryAddr struct{ name, addr string }
	lns := map[entryAddr]net.Listener{}
	closeAll := func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}
	for _, e := range newE {
		for _, a := range e.Listen {
			if freed[a] {
				continue
			}
			ln, err := net.Listen("tcp", a)
			if err != nil {
				closeAll()
				log.WithError(err).Errorf("reload refused: entry %s cannot listen", e.Name)
				return fmt.Errorf("configuration refused, the one in force is kept: entry %s: %w", e.Name, err)
			}
			lns[entryAddr{e.Name, a}] = ln
		}
	}

	mc := next.MuxConfig(r.extra)
	mc.Version = version.String(next.kind.Name)
	changes, err := r.node.Reconfigure(mc, next.ShutdownGrace)
	if err != nil {
		closeAll()
		log.WithError(err).Error("reload refused")
		return fmt.Errorf("configuration refused, the one in force is kept: %w", err)
	}
	for _, e := range goneE {
		r.node.RemoveEntry(e.Name, next.ShutdownGrace)
		if _, ok := nextE[e.Name]; !ok {
			changes = append(changes, fmt.Sprintf("entry %s removed", e.Name))
		}
	}
	for _, e := range newE {
		ec := next.entryConfig(e)
		var on []string
		for _, a := range e.Listen {
			ln := lns[entryAddr{e.Name, a}]
			if ln == nil {
				if ln, err = net.Listen("tcp", a); err != nil {
					log.WithError(err).Errorf("entry %s not added on %s: it cannot listen there", e.Name, a)
					continue
				}
			}
			if e.Kind != "" {
				r.node.AddAddrEntry(ln, next.addrEntryConfig(e))
			} else {
				r.node.AddEntryWith(ln, ec)
			}
			on = append(on, ln.Addr().String())
		}
		if len(on) == 0 {
			continue
		}
		what := "added"
		if _, ok := curE[e.Name]; ok {
			what = "changed"
		}
		if e.Kind != "" {
			changes = append(changes, fmt.Sprintf("entry %s %s on %s for %s clients", e.Name, what, strings.Join(on, ","), e.Kind))
			continue
		}
		changes = append(changes, fmt.Sprintf("entry %s %s on %s for %s at %s", e.Name, what, strings.Join(on, ","), e.Service, e.Dest))
	}
	changes = append(changes, daemon.FieldChanges("tuning", cur.Tuning, next.Tuning)...)
	if cur.ShutdownGrace != next.ShutdownGrace {
		changes = append(changes, fmt.Sprintf("shutdown_grace %s -> %s", cur.ShutdownGrace, next.ShutdownGrace))
	}
	for _, c := range changes {
		log.Info(c)
	}
	if len(changes) == 0 {
		log.Infof("configuration reloaded from %s: no change", next.file)
	} else {
		log.Infof("configuration reloaded from %s: %d changes applied", next.file, len(changes))
	}
	r.cur = next
	return nil
}

// restartNeeded lists the top-level keys that differ between cur and next
// and that a liveNode node cannot change.
func restartNeeded(cur, next *Config) []string {
	var out []string
	a, b := reflect.ValueOf(cur).Elem(), reflect.ValueOf(next).Elem()
	t := a.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if key == "" {
			key = f.Name
		}
		if liveKeys[key] || reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			continue
		}
		out = append(out, key)
	}
	return out
}

// adoptTLS makes next use cur's loaded TLS material wherever it names the
// same files: the node's, and each link's whose label and tls section are
// the same. So an unchanged link compares equal and stays up; the files
// are read again by cur.ReloadTLS.
func (next *Config) adoptTLS(cur *Config) {
	if reflect.DeepEqual(next.TLS, cur.TLS) {
		next.tlsStore = cur.tlsStore
	}
	curLinks := map[string]Link{}
	for _, l := range append(append([]Link(nil), cur.Parents...), cur.Children...) {
		curLinks[l.Label] = l
	}
	for _, ls := range [][]Link{next.Parents, next.Children} {
		for i := range ls {
			if c, ok := curLinks[ls[i].Label]; ok && ls[i].TLS != nil && reflect.DeepEqual(ls[i].TLS, c.TLS) {
				ls[i].tlsStore = c.tlsStore
			}
		}
	}
}
