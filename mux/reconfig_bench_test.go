package mux_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// BenchmarkReconfigure measures a reconfiguration of a relay with 200
// child links on one port and 50 services, of which one service comes and
// goes: the cost of comparing everything that stays.
func BenchmarkReconfigure(b *testing.B) {
	cfg := mux.Config{Label: "relay", Role: mux.RoleRelay, Tuning: muxtest.FastTuning(),
		Links:    []mux.LinkConfig{{Peer: "parent", Parent: true, Dial: "127.0.0.1:1"}},
		Services: map[string]mux.Service{}}
	for i := 0; i < 200; i++ {
		cfg.Links = append(cfg.Links, mux.LinkConfig{Peer: fmt.Sprintf("child-%d", i), Listen: "127.0.0.1:0"})
	}
	for i := 0; i < 50; i++ {
		cfg.Services[fmt.Sprintf("svc-%d", i)] = mux.Service{Addrs: []string{"127.0.0.1:9"}, Allow: []string{"a", "b"}}
	}
	cfg = muxtest.WithTLS(b, cfg)
	n := muxtest.StartNode(b, cfg, muxtest.WithLog(benchLog()))
	muxtest.WaitFor(b, 10*time.Second, "the node serving", func() bool { return n.LinkAddr("child-0") != nil })
	with := cfg
	with.Services = map[string]mux.Service{"extra": {Addrs: []string{"127.0.0.1:9"}}}
	for k, v := range cfg.Services {
		with.Services[k] = v
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		next := cfg
		if i%2 == 0 {
			next = with
		}
		if _, err := n.Reconfigure(next, time.Second); err != nil {
			b.Fatal(err)
		}
	}
}
