package chain

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/internal/daemon"
	"github.com/relaychain/relaychain/mux"
)

// This file runs the endpoint registry on the epproxy (registry.go): the
// registry keeper loads the state file into the node at start, and at
// each change of the registry binds the port_map ports and writes the
// state file again.

// portMap is one port_map entry as the registry keeper runs it.
type portMap struct {
	name   string
	host   string
	lo, hi int
	port   uint16 // at the endpoint
	rules  mux.ACL
	where  string // the entry's file:line, for a default deny's log
}

// registryKeeper runs on the epproxy: it loads the registry into the
// node, and at each change of it binds the port_map ports and writes the
// state file.
type registryKeeper struct {
	node *mux.Node
	path string
	maps []portMap
	log  *logrus.Entry

	mu    sync.Mutex
	ports map[string]map[string]int  // as in registryState
	bound map[string]map[int]string  // entry -> port -> endpoint bound there
	full  map[string]map[string]bool // entry -> endpoints without a port (logged once)
	lns   map[string]map[int]func()  // entry -> port -> removes its listener
	fullN uint64                     // endpoints left without a port, counted once each
	// The file exists (loaded or written): an epproxy that never had an
	// endpoint writes none. saveFailed: the last write failed (logged
	// once until one succeeds).
	haveFile, saveFailed bool

	// The listening sockets a successor took over from its predecessor,
	// by address, while adopt runs: bind takes a port's socket from here
	// instead of binding it again (the predecessor still holds it).
	inherited map[string]net.Listener
}

func newRegistryKeeper(cfg *Config, n *mux.Node, log *logrus.Entry) (*registryKeeper, error) {
	k := &registryKeeper{node: n, path: cfg.RegistryPath(), log: daemon.Component(log.Logger, "registry"),
		bound: map[string]map[int]string{}, full: map[string]map[string]bool{}, lns: map[string]map[int]func(){}}
	for _, e := range cfg.Entries {
		if e.Kind != KindPortMap {
			continue
		}
		h, lo, hi, _ := portRange(firstAddr(e.Listen))
		ae := cfg.addrEntryConfig(e)
		k.maps = append(k.maps, portMap{name: e.Name, host: h, lo: lo, hi: hi, port: uint16(e.EndpointPort), rules: ae.Rules, where: ae.Where})
	}
	st, err := loadRegistry(k.path)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	_, statErr := os.Stat(k.path)
	k.haveFile = statErr == nil
	var eps []mux.Endpoint
	for _, e := range st.Endpoints {
		a, err := netip.ParseAddr(e.Addr)
		if err != nil {
			continue
		}
		eps = append(eps, mux.Endpoint{Addr: a, Label: e.Label, First: e.First, Last: e.Last})
	}
	n.LoadEndpoints(eps)
	k.ports = st.Ports
	if len(eps) > 0 {
		k.log.Infof("registry: %d endpoints loaded from %s", len(eps), k.path)
	}
	return k, nil
}

// run keeps the ports and the file in step with the registry until ctx
// ends; failed binds are tried again every minute.
func (k *registryKeeper) run(ctx context.Context) error {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	k.sync()
	for {
		select {
		case <-ctx.Done():
			k.sync() // the last seen times of the endpoints still announced
			return nil
		case <-k.node.EndpointsChanged():
		case <-tick.C:
		}
		k.sync()
	}
}

// sync assigns ports to new endpoints, frees those of endpoints gone,
// binds what is not bound, and writes the state file.
func (k *registryKeeper) sync() {
	eps := k.node.Endpoints()
	k.mu.Lock()
	defer k.mu.Unlock()
	in := map[string]bool{}
	for _, e := range eps {
		in[e.Addr.String()] = true
	}
	for _, m := range k.maps {
		as := k.ports[m.name]
		if as == nil {
			as = map[string]int{}
			k.ports[m.name] = as
		}
		used := map[int]string{}
		for a, p := range as {
			_, taken := used[p]
			if !in[a] || p < m.lo || p > m.hi || taken {
				delete(as, a) // gone, outside the range now, or a clash in a hand-edited file
				k.unbind(m.name, p)
				continue
			}
			used[p] = a
		}
		next := m.lo
		for _, e := range eps {
			a := e.Addr.String()
			if _, ok := as[a]; ok {
				continue
			}
			for next <= m.hi && used[next] != "" {
				next++
			}
			if next > m.hi {
				if k.full[m.name] == nil {
					k.full[m.name] = map[string]bool{}
				}
				if !k.full[m.name][a] {
					k.full[m.name][a] = true
					k.fullN++
					k.log.WithFields(logrus.Fields{"entry": m.name, "endpoint": a}).
						Warnf("port_map %s is full: all %d ports are taken; endpoint %s has no port", m.name, m.hi-m.lo+1, a)
				}
				continue
			}
			as[a], used[next] = next, a
			delete(k.full[m.name], a)
			k.log.WithFields(logrus.Fields{"entry": m.name, "endpoint": a, "gwproxy": e.Label}).
				Infof("port_map %s: port %d is endpoint %s", m.name, next, a)
		}
		for a, p := range as {
			if k.bound[m.name][p] == a {
				continue
			}
			k.unbind(m.name, p)
			k.bind(m, p, a)
		}
	}
	if len(eps) == 0 && !k.haveFile {
		return
	}
	st := registryState{Ports: k.ports}
	for _, e := range eps {
		st.Endpoints = append(st.Endpoints, stateEndpoint{Addr: e.Addr.String(), Label: e.Label, First: e.First, Last: e.Last})
	}
	if err := saveRegistry(k.path, st); err != nil {
		if !k.saveFailed {
			k.log.WithError(err).Errorf("registry not saved: the endpoints and port_map ports will not survive a restart; set registry_file to a writable place")
		}
		k.saveFailed = true
		return
	}
	if k.saveFailed {
		k.log.Infof("registry saved in %s again", k.path)
	}
	k.haveFile, k.saveFailed = true, false
}

func (k *registryKeeper) bind(m portMap, port int, addr string) {
	hp := net.JoinHostPort(m.host, strconv.Itoa(port))
	ln, ok := k.inherited[hp]
	if ok {
		delete(k.inherited, hp)
	} else {
		var err error
		if ln, err = net.Listen("tcp", hp); err != nil {
			if k.inherited != nil {
				// Taking over: the running instance holds the port;
				// run binds it again once it has handed over.
				k.log.WithError(err).WithField("entry", m.name).Warnf("port_map %s: port %d for endpoint %s not handed over by the running instance; bound once it has handed over", m.name, port, addr)
				return
			}
			k.log.WithError(err).WithField("entry", m.name).Errorf("port_map %s: port %d for endpoint %s not bound; tried again in a minute", m.name, port, addr)
			return
		}
	}
	name := fmt.Sprintf("%s:%d", m.name, port)
	k.node.AddAddrEntry(ln, mux.AddrEntry{Name: name, Kind: mux.EntryPortMap, Host: addr, Port: m.port, Rules: m.rules, Where: m.where})
	if k.bound[m.name] == nil {
		k.bound[m.name], k.lns[m.name] = map[int]string{}, map[int]func(){}
	}
	k.bound[m.name][port] = addr
	k.lns[m.name][port] = func() { k.node.RemoveEntry(name, 0) }
}

func (k *registryKeeper) unbind(entry string, port int) {
	if rm := k.lns[entry][port]; rm != nil {
		rm()
		delete(k.lns[entry], port)
		delete(k.bound[entry], port)
	}
}

// fill adds the ports to a status.
func (k *registryKeeper) fill(st *mux.NodeStatus) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for i := range st.Endpoints {
		e := &st.Endpoints[i]
		for _, m := range k.maps {
			if p, ok := k.ports[m.name][e.Addr]; ok {
				if e.Ports == nil {
					e.Ports = map[string]int{}
				}
				e.Ports[m.name] = p
			}
		}
	}
	st.PortMapFull = k.fullN
}
