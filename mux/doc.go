// Package mux is the core of the relay chain: links between a parent and a
// child node (one TCP connection each, mutual TLS 1.3 with each peer's
// certificate bound to its label, multiplexed with yamux), the hello that
// comes before yamux, the WHO/TELL control protocol that builds every
// node's routing table, and routed sessions that carry one TCP connection
// (or an in-process stream) from an entry node to a destination node and
// always close, however they end.
//
// The wire format is written down in PROTOCOL.md beside this file.
//
// Typical usage:
//
//	cfg := mux.Config{
//		Label: "relay-dmz1",
//		Role:  mux.RoleRelay,
//		Links: []mux.LinkConfig{
//			{Peer: "epp-main", Parent: true, Dial: "epp.example:7001"},
//			{Peer: "gwp-dmz2", Listen: ":7002"},
//		},
//		Tuning: mux.DefaultTuning(),
//		TLS:    creds, // a mux.Credentials: certificate, key, trust bundle
//	}
//	n, err := mux.New(cfg, log)           // binds the listen sockets
//	go n.Serve(ctx)                       // links, reconnects, sessions
//	c, err := n.Open(ctx, "gwp-dmz2", "ssh") // a routed session (*mux.Conn)
//	...
//	changes, err := n.Reconfigure(cfg2, grace) // links, services, tuning replaced live
//	n.Shutdown(graceCtx)                  // drain, then abort what is left
package mux
