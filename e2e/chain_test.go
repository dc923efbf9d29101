package e2e

import (
	"testing"
	"time"

	"github.com/relaychain/relaychain/e2e/e2etest"
)

// targets are the in-test servers that stand for the gateway and the
// endpoints of sites A and B.
type targets struct{ gateway, endpointA, endpointB *target }

// startTargets starts the gateway and endpoint servers.
func startTargets(t testing.TB) *targets {
	t.Helper()
	return &targets{
		gateway:   startTarget(t, "gateway"),
		endpointA: startTarget(t, "endpoint-a"),
		endpointB: startTarget(t, "endpoint-b"),
	}
}

func (tg *targets) fixedPorts() map[int]int {
	return map[int]int{
		e2etest.PortGateway:   tg.gateway.port(),
		e2etest.PortEndpointA: tg.endpointA.port(),
		e2etest.PortEndpointB: tg.endpointB.port(),
	}
}

// startChain copies the example chain with fresh ports and fast tuning,
// pointing its services at tg, starts every daemon and waits until the
// root has learnt the routes to both gwproxies.
func startChain(t testing.TB, tg *targets) *e2etest.Chain {
	t.Helper()
	return startChainWith(t, tg.fixedPorts())
}

// startChainWith is startChain with the services' ports given: fixed maps
// the example's gateway and endpoint ports to the targets' ports.
func startChainWith(t testing.TB, fixed map[int]int) *e2etest.Chain {
	t.Helper()
	c := e2etest.NewChain(t, e2etest.Options{Nodes: e2etest.SessionNodes, Fixed: fixed, Tuning: e2etest.FastTuning})
	c.StartAll()
	waitFormed(t, c, 0)
	return c
}

// waitFormed waits until the root's log holds, after its first skip
// bytes, a routing change that adds each gwproxy.
func waitFormed(t testing.TB, c *e2etest.Chain, skip int64) {
	t.Helper()
	c.Proc("epp-main").WaitLog(t, skip, 20*time.Second, e2etest.RouteAdded("gwp-site-a"), e2etest.RouteAdded("gwp-site-b"))
}

// entryRoute is an entry of the chain and the target its sessions reach.
type entryRoute struct {
	name  string
	entry string
	tg    *target
}

// entryRoutes are the four entries of the chain: an upcall from each site
// and a downcall to each.
func entryRoutes(c *e2etest.Chain, tg *targets) []entryRoute {
	return []entryRoute{
		{"upcall site A", c.Addr(e2etest.PortUpA), tg.gateway},
		{"upcall site B", c.Addr(e2etest.PortUpB), tg.gateway},
		{"downcall site A", c.Addr(e2etest.PortDownA), tg.endpointA},
		{"downcall site B", c.Addr(e2etest.PortDownB), tg.endpointB},
	}
}
