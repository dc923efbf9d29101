//go:build unix

package mux_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// The benchmarks of single sessions: a round trip per hop, session opens
// per second, the memory an idle session takes. bench_test.go says how to
// run them and what they are compared with.

// benchEcho is an in-process service that echoes until the clean end.
func benchEcho(_ context.Context, c *mux.Conn) {
	defer c.Close()
	buf := make([]byte, 4<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err == io.EOF {
			_ = c.CloseWrite()
			return
		}
		if err != nil {
			return
		}
	}
}

// BenchmarkRoundTripPerHop: a 64-byte ping-pong over an established
// session from the leaf's Open to an in-process echo at the root, through
// one link (leaf-root) and through the four-node chain (three links),
// interleaved; links on TLS. ns/op is one round trip on each. Metrics:
// ns/rtt-1hop and ns/rtt-3hop; ns/hop-rtt is what one more hop (a relay
// node and a link) adds to a round trip: (rtt3 - rtt1) / 2.
func BenchmarkRoundTripPerHop(b *testing.B) {
	svc := map[string]mux.Service{"echo": {Handler: benchEcho}}
	one := startBenchLine(b, 1, false, svc, nil)
	three := startBenchLine(b, 3, false, svc, nil)
	ctx := context.Background()
	c1, err := one.leaf().Open(ctx, "root", "echo")
	if err != nil {
		b.Fatal(err)
	}
	c3, err := three.leaf().Open(ctx, "root", "echo")
	if err != nil {
		b.Fatal(err)
	}
	msg := make([]byte, 64)
	got := make([]byte, len(msg))
	rt := func(c *mux.Conn) {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, got); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < 200; i++ { // warm up
		rt(c1)
		rt(c3)
	}
	b.ResetTimer()
	var t1, t3 time.Duration
	for i := 0; i < b.N; i++ {
		msg[0] = byte(i)
		s := time.Now()
		rt(c1)
		m := time.Now()
		rt(c3)
		t3 += time.Since(m)
		t1 += m.Sub(s)
		if got[0] != byte(i) {
			b.Fatalf("echo returned %d, sent %d", got[0], byte(i))
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(t1.Nanoseconds())/n, "ns/rtt-1hop")
	b.ReportMetric(float64(t3.Nanoseconds())/n, "ns/rtt-3hop")
	b.ReportMetric(float64((t3-t1).Nanoseconds())/n/2, "ns/hop-rtt")
	for _, c := range []*mux.Conn{c1, c3} {
		if err := c.CloseWrite(); err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, c); err != nil {
			b.Fatal(err)
		}
		_ = c.Close()
	}
	one.waitDrained(b)
	three.waitDrained(b)
}

// benchSessions runs complete sessions against addr, from 16 clients at
// once, and reports opens/s and the process CPU per session.
func benchSessions(b *testing.B, addr string) {
	session := func() error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			return err
		}
		got, err := io.ReadAll(c)
		if err != nil {
			return err
		}
		if string(got) != "ping" {
			return fmt.Errorf("echo returned %q", got)
		}
		return nil
	}
	if err := session(); err != nil { // warm up
		b.Fatal(err)
	}
	b.SetParallelism(8) // 8 x GOMAXPROCS clients
	b.ResetTimer()
	start := time.Now()
	cpu0 := benchProcCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := session(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	el := time.Since(start)
	cpu := benchProcCPU(b) - cpu0
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "opens/s")
	// The CPU one session costs the whole process: on a busy machine a
	// steadier figure than opens/s; opens/s with the cores to itself is
	// about GOMAXPROCS / cpu-us/open.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/open")
}

// BenchmarkSessionOpensDirect: the same sessions as BenchmarkSessionOpens,
// straight from the clients to the echo server: the clients' and the echo
// server's share of the cost.
func BenchmarkSessionOpensDirect(b *testing.B) {
	echo := startEcho(b)
	benchSessions(b, echo.addr())
}

// BenchmarkSessionOpens: complete sessions through leaf-relay-root, each a
// TCP connect to the leaf's entry, the open to the root and its dial of a
// TCP echo server, a 4-byte exchange, a half-close each way and the close;
// 16 clients at once; sub-benchmarks tls and plain (the links' TLS
// handshakes happen once, before the timer starts: a session opens a yamux
// stream on a link that is up). Metrics: opens/s, and cpu-us/open, the
// process CPU per session (three nodes, the clients and the echo server;
// subtract BenchmarkSessionOpensDirect's for the nodes' share).
func BenchmarkSessionOpens(b *testing.B) {
	benchBothVariants(b, func(b *testing.B, plain bool) {
		echo := startEcho(b)
		ln := listenEntry(b)
		line := startBenchLine(b, 2, plain, map[string]mux.Service{"echo": {Addrs: []string{echo.addr()}}},
			[]muxtest.Option{muxtest.WithEntry(ln, "bench", "root", "echo")})
		benchSessions(b, ln.Addr().String())
		line.waitDrained(b)
	})
}

// benchIdleSessions is how many idle sessions BenchmarkIdleSessionHeap holds.
// Each takes four sockets in this process (client, entry, the root's dial,
// the target's accept): 8,000 descriptors, well under the 20,000 cap.
const benchIdleSessions = 2000

// benchHoldServer accepts connections, answers one byte for one byte, then
// holds each connection idle until the other side closes it.
type benchHoldServer struct {
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	open map[net.Conn]bool
}

func startBenchHoldServer(b *testing.B) *benchHoldServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	h := &benchHoldServer{ln: ln, open: map[net.Conn]bool{}}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.open[c] = true
			h.mu.Unlock()
			h.wg.Add(1)
			go func() {
				defer h.wg.Done()
				defer func() {
					h.mu.Lock()
					delete(h.open, c)
					h.mu.Unlock()
					_ = c.Close()
				}()
				var one [1]byte
				if _, err := io.ReadFull(c, one[:]); err != nil {
					return
				}
				if _, err := c.Write(one[:]); err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	b.Cleanup(func() {
		_ = ln.Close()
		h.mu.Lock()
		for c := range h.open {
			_ = c.Close()
		}
		h.mu.Unlock()
		h.wg.Wait()
	})
	return h
}

func (h *benchHoldServer) conns() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.open)
}

// benchOpenIdle dials addr n times (8 at once), exchanges one byte on each, so
// that the whole path is established, and returns the connections.
func benchOpenIdle(b *testing.B, addr string, n int) []net.Conn {
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	errc := make(chan error, n)
	next := make(chan int, n)
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					errc <- err
					return
				}
				conns[i] = c
				one := []byte{byte(i)}
				if _, err := c.Write(one); err != nil {
					errc <- err
					return
				}
				if _, err := io.ReadFull(c, one); err != nil || one[0] != byte(i) {
					errc <- fmt.Errorf("exchange on connection %d: %v", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		benchCloseAll(conns)
		b.Fatal(err)
	}
	return conns
}

func benchCloseAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			_ = c.Close()
		}
	}
}

// benchMemNow returns the live heap and the stack in use after a full GC.
func benchMemNow() (heap, stack int64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc), int64(ms.StackInuse)
}

// BenchmarkIdleSessionHeap: holds benchIdleSessions idle sessions through
// leaf-relay-root (TCP client -> leaf entry -> relay -> root -> TCP target),
// links on TLS, and reports the memory they take. Each op opens them all, exchanges one
// byte on each, measures, and tears them down. The client's and the
// target's own share (two sockets and the target's goroutine per session)
// is measured the same way over direct connections and subtracted, so
// heap-B/sess/node and stack-B/sess/node are the nodes' own cost, divided
// by the three nodes; heap-B/sess-all and stack-B/sess-all are the raw
// process-wide deltas per session. The stack figures are upper bounds:
// StackInuse also counts the stacks the runtime keeps for reuse from
// goroutines that already ended (such as the shrink timers' callbacks).
func BenchmarkIdleSessionHeap(b *testing.B) {
	const nodes = 3
	hold := startBenchHoldServer(b)
	ln := listenEntry(b)
	line := startBenchLine(b, 2, false, map[string]mux.Service{"hold": {Addrs: []string{hold.ln.Addr().String()}}},
		[]muxtest.Option{muxtest.WithEntry(ln, "bench", "root", "hold")})
	entryAddr := ln.Addr().String()
	waitIdle := func(want int) {
		muxtest.WaitFor(b, 30*time.Second, "sessions to settle", func() bool {
			for _, n := range line.nodes {
				if n.Sessions() != want {
					return false
				}
			}
			return hold.conns() == want
		})
	}
	// Warm up pools and maps on the whole path.
	benchCloseAll(benchOpenIdle(b, entryAddr, 50))
	waitIdle(0)

	var heapSum, stackSum, rawHeapSum, rawStackSum float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Baseline: the client and target alone, over direct connections.
		h0, s0 := benchMemNow()
		conns := benchOpenIdle(b, hold.ln.Addr().String(), benchIdleSessions)
		h1, s1 := benchMemNow()
		benchCloseAll(conns)
		waitIdle(0)

		h2, s2 := benchMemNow()
		conns = benchOpenIdle(b, entryAddr, benchIdleSessions)
		waitIdle(benchIdleSessions) // no byte moves from here until benchCloseAll
		// Let every direction's receive buffer be released (see
		// shrinkDelay): that is the state of an idle session.
		time.Sleep(4 * mux.ShrinkDelay)
		h3, s3 := benchMemNow()
		benchCloseAll(conns)
		waitIdle(0)

		rawHeap := float64(h3-h2) / benchIdleSessions
		rawStack := float64(s3-s2) / benchIdleSessions
		rawHeapSum += rawHeap
		rawStackSum += rawStack
		heapSum += (rawHeap - float64(h1-h0)/benchIdleSessions) / nodes
		stackSum += (rawStack - float64(s1-s0)/benchIdleSessions) / nodes
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(heapSum/n, "heap-B/sess/node")
	b.ReportMetric(stackSum/n, "stack-B/sess/node")
	b.ReportMetric(rawHeapSum/n, "heap-B/sess-all")
	b.ReportMetric(rawStackSum/n, "stack-B/sess-all")
}
