package e2etest_test

import (
	"net"
	"testing"
	"time"

	"github.com/relaychain/relaychain/e2e/e2etest"
)

// A test that kills a relay of the example chain, starts it again and
// waits until the root has its route back; then it may open a session
// through the upcall entry of site A. (The package's TestMain calls
// e2etest.Main.)
func ExampleNewChain() {
	testRelayComesBack := func(t *testing.T) {
		c := e2etest.NewChain(t, e2etest.Options{
			Nodes:  e2etest.SessionNodes,
			Tuning: e2etest.FastTuning,
		})
		c.StartAll()
		root := c.Proc("epp-main")
		root.WaitLog(t, 0, 20*time.Second, e2etest.RouteAdded("gwp-site-a"))
		c.Proc("relay-dmz2").Kill(t)
		skip := root.LogSize()
		c.Start("relay-dmz2")
		root.WaitLog(t, skip, 20*time.Second, e2etest.RouteAdded("gwp-site-a"))
		conn, err := net.Dial("tcp", c.Addr(e2etest.PortUpA)) // the upcall entry of site A
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
	}
	_ = testRelayComesBack
}
