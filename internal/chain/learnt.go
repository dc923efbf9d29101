package chain

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/internal/atomicfile"
	"github.com/relaychain/relaychain/internal/daemon"
	"github.com/relaychain/relaychain/mux"
)

// A gwproxy that learns its endpoints (register_endpoints) keeps them in
// its registry file (registry_file, default registry.json beside the
// configuration file) across restarts: at start it announces them again
// at once, each expiring endpoint_ttl after it was last seen, so that
// downcalls reach them without waiting for each to make an upcall.

// learntKeeper writes a gwproxy's learnt endpoints to its registry file.
type learntKeeper struct {
	node  *mux.Node
	path  string
	log   *logrus.Entry
	saved []byte // what the file holds
}

// newLearntKeeper loads the endpoints kept by an earlier run into n
// (before Serve).
func newLearntKeeper(cfg *Config, n *mux.Node, log *logrus.Entry) (*learntKeeper, error) {
	k := &learntKeeper{node: n, path: cfg.RegistryPath(), log: daemon.Component(log.Logger, "registry")}
	st, err := loadRegistry(k.path)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	var eps []mux.Endpoint
	for _, e := range st.Endpoints {
		a, err := netip.ParseAddr(e.Addr)
		if err != nil {
			continue
		}
		eps = append(eps, mux.Endpoint{Addr: a, Label: e.Label, First: e.First, Last: e.Last})
	}
	if took := n.LoadOwnEndpoints(eps); len(eps) > 0 {
		k.log.Infof("registry: %d endpoints learnt before loaded from %s, announced again (%d expired or not this node's)", took, k.path, len(eps)-took)
	}
	return k, nil
}

// run writes the file when the endpoints change, and each minute (their
// last seen times), until ctx ends; then once more.
func (k *learntKeeper) run(ctx context.Context) error {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			k.save()
			return nil
		case <-k.node.EndpointsChanged():
		case <-tick.C:
		}
		k.save()
	}
}

// save writes the endpoints, if they changed since the last write.
func (k *learntKeeper) save() {
	st := registryState{Endpoints: []stateEndpoint{}}
	for _, e := range k.node.Endpoints() {
		st.Endpoints = append(st.Endpoints, stateEndpoint{Addr: e.Addr.String(), Label: e.Label, First: e.First, Last: e.Last})
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil || bytes.Equal(b, k.saved) {
		return
	}
	if err := atomicfile.Write(k.path, filepath.Base(k.path)+".tmp", append(b, '\n'), nil); err != nil {
		k.log.WithError(err).Errorf("registry: %s not written: the endpoints learnt will have to make an upcall again after a restart", k.path)
		return
	}
	k.saved = b
}
