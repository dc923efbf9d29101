package mux

import "testing"

// A network written with every port (1-65535) is the network without
// ports: beside the same network without ports it is a tie (no route,
// logged), not a more specific claim that wins.
func TestNetworkEveryPortRanksAsNoPort(t *testing.T) {
	var buf lockedBuf
	rt := newRoutingTable("root", bufLog(&buf), 1000, 1000)
	rt.setAccept(acceptAny("gwp-a", "gwp-b"))
	_ = rt.replaceNets("gwp-a", ads("gwp-a", "10.1.0.0/16"))
	_ = rt.replaceNets("gwp-b", ads("gwp-b", "10.1.0.0/16:1-65535"))
	best := rt.nets.lookup("10.1.2.3", 80, func(string) bool { return true })
	if len(best) != 2 {
		t.Errorf("10.1.2.3:80 picks %d entries (%v), want a tie; log %q", len(best), best[0].ad, buf.String())
	}
}
