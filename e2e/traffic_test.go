package e2e

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relaychain/relaychain/e2e/e2etest"
)

// TestTraffic carries big full-duplex sessions and many small ones through
// the whole chain, upcalls from both gwproxies and downcalls to both
// sites, and checks every byte by SHA-256 both ways. Then it checks that
// no daemon holds a CLOSE_WAIT socket or a descriptor more than before.
func TestTraffic(t *testing.T) {
	tg := startTargets(t)
	c := startChain(t, tg)
	base := e2etest.FDBaseline(t, c.Procs()...)
	routes := entryRoutes(c, tg)

	t.Run("big", func(t *testing.T) {
		sizes := []int64{64 << 20, 16 << 20, 64 << 20, 16 << 20} // per route, each way
		type run struct {
			r  entryRoute
			p  plan
			cs *clientSession
		}
		var runs []run
		for i, r := range routes {
			p := plan{up: sizes[i], down: sizes[i]}
			runs = append(runs, run{r, p, startSession(t, r.entry, p)})
		}
		// One direction only: the half-close of the silent side comes
		// first, and the other direction must still deliver every byte.
		for _, p := range []plan{{up: 0, down: 8 << 20}, {up: 8 << 20, down: 0}} {
			for _, r := range []entryRoute{routes[0], routes[3]} {
				runs = append(runs, run{r, p, startSession(t, r.entry, p)})
			}
		}
		for _, x := range runs {
			cl := x.cs.wait(t, 120*time.Second)
			res := x.r.tg.result(t, x.cs.id, 30*time.Second)
			if err := checkClean(cl, res, x.p); err != nil {
				t.Errorf("%s, %d bytes up, %d down: %v", x.r.name, x.p.up, x.p.down, err)
			}
		}
	})

	t.Run("small", func(t *testing.T) {
		const sessions, concurrency = 300, 50
		rng := rand.New(rand.NewPCG(1, 2))
		type job struct {
			r entryRoute
			p plan
		}
		jobs := make(chan job, sessions)
		for range sessions {
			jobs <- job{routes[rng.IntN(len(routes))], plan{up: rng.Int64N(64<<10 + 1), down: rng.Int64N(64<<10 + 1)}}
		}
		close(jobs)
		var mu sync.Mutex
		var failures []string
		var wg sync.WaitGroup
		for range concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range jobs {
					cs := startSession(t, j.r.entry, j.p)
					select {
					case <-cs.done:
					case <-time.After(60 * time.Second):
						mu.Lock()
						failures = append(failures, j.r.name+": session not done within 60s")
						mu.Unlock()
						continue
					}
					msg := ""
					if cs.err != nil {
						msg = cs.err.Error()
					} else {
						s := j.r.tg.session(cs.id)
						select {
						case <-s.done:
							if err := checkClean(cs.res, s.res, j.p); err != nil {
								msg = err.Error()
							}
						case <-time.After(30 * time.Second):
							msg = "target never finished"
						}
					}
					if msg != "" {
						mu.Lock()
						failures = append(failures, j.r.name+": "+msg)
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
		for i, f := range failures {
			if i == 10 {
				t.Errorf("... and %d more", len(failures)-10)
				break
			}
			t.Error(f)
		}
	})

	t.Run("chaindemo", func(t *testing.T) {
		// tools/chaindemo send, as scripts/demo.sh uses it, against
		// chaindemo serve targets on a chain of their own.
		testChaindemo(t)
	})

	t.Run("no leaks", func(t *testing.T) {
		e2etest.CheckNoLeaks(t, base, 15*time.Second)
	})

	t.Run("no errors logged", func(t *testing.T) {
		// Sessions that end well log nothing at level 1 (errors) on any node.
		for _, p := range c.Procs() {
			if l := logLines(p, 0, func(n int) bool { return n <= 1 }); len(l) > 0 {
				t.Errorf("%s logged errors:\n%s", p.Name, strings.Join(l, "\n"))
			}
		}
	})
}

// testChaindemo runs the example chain with chaindemo serve processes as
// the gateway and the endpoints, and chaindemo send through every entry.
func testChaindemo(t *testing.T) {
	demo := e2etest.Bin(t, "chaindemo")
	dir := t.TempDir()
	fixed := map[int]int{}
	for port, name := range map[int]string{e2etest.PortGateway: "gateway", e2etest.PortEndpointA: "endpoint-site-a", e2etest.PortEndpointB: "endpoint-site-b"} {
		fixed[port] = e2etest.FreePort(t)
		addr := "127.0.0.1:" + strconv.Itoa(fixed[port])
		p := e2etest.StartProcess(t, name, dir, demo, "serve", "-listen", addr, "-name", name)
		e2etest.Eventually(t, 10*time.Second, name+" listening", func() error {
			if p.Exited() {
				t.Fatalf("%s exited: %v\n%s", name, p.Err(), e2etest.FileText(p.Out))
			}
			if !e2etest.Listening(p.Pid(), addr) {
				return fmt.Errorf("not listening on %s", addr)
			}
			return nil
		})
	}
	c := startChainWith(t, fixed)
	for _, e := range []struct {
		port     int
		greeting string
	}{{e2etest.PortUpA, "gateway"}, {e2etest.PortUpB, "gateway"}, {e2etest.PortDownA, "endpoint-site-a"}, {e2etest.PortDownB, "endpoint-site-b"}} {
		stdout, stderr, code := e2etest.RunCommand(t, dir, demo, "send", "-addr", c.Addr(e.port), "-bytes", strconv.Itoa(4<<20), "-timeout", "60s")
		if code != 0 || !strings.Contains(stdout, `greeting "hello from `+e.greeting+`"`) || !strings.Contains(stdout, "sha256 match: true") {
			t.Errorf("chaindemo send to %s: exit %d\n%s%s", c.Addr(e.port), code, stdout, stderr)
		}
	}
}
