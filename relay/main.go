// Command relay forwards sessions between its parent and its children in
// a DMZ: one TCP port per firewall crossing. See README.md.
package main

import (
	"github.com/relaychain/relaychain/internal/chain"
	"github.com/relaychain/relaychain/internal/daemon"
)

func main() { daemon.Main(chain.Spec(chain.Relay, chain.Hooks{})) }
