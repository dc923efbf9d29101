// Command gwproxy is the gateway proxy: a leaf of the relay chain beside
// the endpoints. It stands in for the gateway towards them (upcall
// entries) and dials them for downcalls (its services). See README.md.
package main

import (
	"github.com/relaychain/relaychain/internal/chain"
	"github.com/relaychain/relaychain/internal/daemon"
)

func main() { daemon.Main(chain.Spec(chain.GWProxy, chain.Hooks{})) }
