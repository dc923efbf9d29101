// Command eventsink takes events in an outer zone (log adapters sending
// EIF events ending in END, syslog or plain text lines, over TCP and UDP),
// keeps each one in a durable on-disk spool before it counts as received,
// and forwards them up the relay chain to the epproxy, which delivers them
// to the event server. See README.md; the daemon is package eventsink/sink.
package main

import (
	"github.com/relaychain/relaychain/eventsink/sink"
	"github.com/relaychain/relaychain/internal/chain"
	"github.com/relaychain/relaychain/internal/daemon"
)

func main() { daemon.Main(chain.Spec(chain.EventSink, chain.Hooks{Part: sink.Part})) }
