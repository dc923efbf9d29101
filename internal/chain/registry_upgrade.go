package chain

import "net"

// A rolling upgrade of the epproxy (upgrade.go): the port_map ports are
// among the listening sockets its predecessor hands over, and the
// successor binds them on those sockets, before it tells the predecessor
// it is ready. So a port_map port is the same socket throughout: it
// never stops answering, and the connections waiting in its queue when
// the predecessor stops accepting are accepted by the successor.

// adopt binds the port_map ports of the endpoints in the registry now,
// taking each port's socket from inherited (a successor's sockets from
// its predecessor, by address) when it is there; run keeps them in step
// afterwards. It returns the inherited sockets it did not take, for
// closeUnused.
func (k *registryKeeper) adopt(inherited map[string]net.Listener) map[string]net.Listener {
	rest := make(map[string]net.Listener, len(inherited))
	for a, ln := range inherited {
		rest[a] = ln
	}
	k.mu.Lock()
	if inherited != nil {
		k.inherited = rest
	}
	k.mu.Unlock()
	k.sync()
	k.mu.Lock()
	k.inherited = nil
	k.mu.Unlock()
	return rest
}
