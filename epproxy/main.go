// Command epproxy is the endpoint proxy: the root of the relay chain, in
// the secure zone beside the gateway. It dials the gateway for upcalls
// (its services) and routes the gateway's downcalls down the tree (its
// entries). See README.md.
package main

import (
	"github.com/relaychain/relaychain/internal/chain"
	"github.com/relaychain/relaychain/internal/daemon"
)

func main() { daemon.Main(chain.Spec(chain.EPProxy, chain.Hooks{})) }
