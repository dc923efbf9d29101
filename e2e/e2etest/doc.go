// Package e2etest is the harness of the end-to-end tests: it builds the
// real daemons once per test binary, copies the example chain of
// configs/example to a temporary directory with every loopback port moved
// to a free one, starts daemons from those instance directories as child
// processes, waits for their log lines, and checks their sockets and
// descriptors through /proc. It knows the example chain (its nodes, its
// ports) but nothing of the daemons' code: it imports nothing from the
// module, only runs the binaries.
//
// The suites that use it (e2e, e2e/events) keep their own clients,
// servers and checks; the harness only starts, watches and stops.
//
// Typical usage (ExampleNewChain):
//
//	func TestMain(m *testing.M) { e2etest.Main(m) }
//
//	func TestRelayComesBack(t *testing.T) {
//		c := e2etest.NewChain(t, e2etest.Options{
//			Nodes:  e2etest.SessionNodes,
//			Tuning: e2etest.FastTuning,
//		})
//		c.StartAll()
//		root := c.Proc("epp-main")
//		root.WaitLog(t, 0, 20*time.Second, e2etest.RouteAdded("gwp-site-a"))
//		c.Proc("relay-dmz2").Kill(t)
//		skip := root.LogSize()
//		c.Start("relay-dmz2")
//		root.WaitLog(t, skip, 20*time.Second, e2etest.RouteAdded("gwp-site-a"))
//		conn, err := net.Dial("tcp", c.Addr(e2etest.PortUpA)) // the upcall entry of site A
//		...
//	}
//
// Every daemon, like every helper, registers its own cleanup: a daemon
// still running when the test ends gets SIGTERM, then SIGKILL after 10s,
// and the last lines of each node's log are shown when the test failed.
// The tests need Linux (/proc, process groups that die with the test
// binary) and the go tool; they skip with -short.
//
// Options.Prepare runs for each instance directory before any daemon
// starts: the place to write extra files a configuration refers to (keys,
// certificates), with Options.Edit adding the keys that name them.
package e2etest
