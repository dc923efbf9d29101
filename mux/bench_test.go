//go:build unix

package mux_test

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// Benchmarks of the relay chain, all nodes in this process on loopback.
// Run them with scripts/bench.sh, or for example
//
//	go test -run '^$' -bench 'Throughput' -benchtime 2s ./mux/
//
// The figures are measured, never asserted. The targets they are compared
// with: CPU per GB moved through a leaf-relay-root chain at most 1 s summed
// over the nodes; at least 3,000 session opens/s; at most 10 KB per idle
// session per node.
//
// Logging is off (level 0, to io.Discard) so that formatting log lines
// does not distort the figures; nodes run with DefaultTuning.
//
// The chain's throughput and session-open benchmarks run in two variants,
// sub-benchmarks "tls" (every link on TLS 1.3, the default, with test
// credentials from muxtest's CA) and "plain" (every link Plaintext), one
// after the other in the same process so that their figures compare.
// The target for TLS: CPU per GB at most 1.4 times the plaintext figure.

// benchVariants are the link variants of a chain benchmark, by
// sub-benchmark name: plain is false for links on TLS.
var benchVariants = []struct {
	name  string
	plain bool
}{{"tls", false}, {"plain", true}}

// benchBothVariants runs f once per link variant, as sub-benchmarks.
func benchBothVariants(b *testing.B, f func(b *testing.B, plain bool)) {
	for _, v := range benchVariants {
		b.Run(v.name, func(b *testing.B) { f(b, v.plain) })
	}
}

// benchLog is a silent logger.
func benchLog() *logrus.Entry {
	lg := logrus.New()
	lg.SetOutput(io.Discard)
	lg.SetLevel(logrus.PanicLevel)
	return logrus.NewEntry(lg)
}

// benchLine is a chain of nodes in a line: nodes[0] is the root "root",
// the last is the leaf "leaf", relays "relay1".. between. Each child dials
// its parent.
type benchLine struct{ nodes []*mux.Node }

func (l *benchLine) root() *mux.Node { return l.nodes[0] }

func (l *benchLine) leaf() *mux.Node { return l.nodes[len(l.nodes)-1] }

// startBenchLine starts a line of hops links (hops+1 nodes) with quiet
// logs. The root offers rootServices; leafOpts go to the leaf (its
// entries). Every link is Plaintext when plain is set, else on TLS. The
// nodes are shut down when the benchmark ends.
func startBenchLine(b *testing.B, hops int, plain bool, rootServices map[string]mux.Service, leafOpts []muxtest.Option) *benchLine {
	b.Helper()
	labels := make([]string, hops+1)
	labels[0], labels[hops] = "root", "leaf"
	for i := 1; i < hops; i++ {
		labels[i] = fmt.Sprintf("relay%d", i)
	}
	l := &benchLine{}
	for i, label := range labels {
		cfg := mux.Config{Label: label, Role: mux.RoleRelay, Tuning: mux.DefaultTuning()}
		switch i {
		case 0:
			cfg.Role, cfg.Services = mux.RoleRoot, rootServices
		case hops:
			cfg.Role = mux.RoleLeaf
		}
		if i > 0 {
			parent := l.nodes[i-1]
			cfg.Links = append(cfg.Links, mux.LinkConfig{Peer: labels[i-1], Parent: true, Dial: parent.LinkAddr(label).String(), Plaintext: plain})
		}
		if i < hops {
			cfg.Links = append(cfg.Links, mux.LinkConfig{Peer: labels[i+1], Listen: "127.0.0.1:0", Plaintext: plain})
		}
		opts := []muxtest.Option{muxtest.WithLog(benchLog())}
		if i == hops {
			opts = append(opts, leafOpts...)
		}
		n := muxtest.StartNode(b, cfg, opts...)
		l.nodes = append(l.nodes, n)
	}
	muxtest.WaitFor(b, 10*time.Second, "routes to be learned", func() bool {
		return l.root().Routes()["leaf"] != "" && len(l.leaf().PathToRoot()) == hops
	})
	return l
}

// waitDrained waits until no node of l carries a session.
func (l *benchLine) waitDrained(b *testing.B) {
	b.Helper()
	muxtest.WaitFor(b, 20*time.Second, "sessions to drain", func() bool {
		for _, n := range l.nodes {
			if n.Sessions() != 0 {
				return false
			}
		}
		return true
	})
}

// benchProcCPU is the CPU time (user + system) the whole process has used: the
// sum over every node, the client and the sink, which all run here.
func benchProcCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchSink accepts connections, reads and discards everything, then
// answers the byte count (8 bytes, big endian) and closes.
func startBenchSink(tb testing.TB) (addr string, stop func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				buf := make([]byte, 64<<10)
				var total uint64
				for {
					n, err := c.Read(buf)
					total += uint64(n)
					if err == io.EOF {
						break
					}
					if err != nil {
						return
					}
				}
				_, _ = c.Write(binary.BigEndian.AppendUint64(nil, total))
			}()
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = ln.Close()
			wg.Wait()
		})
	}
	return ln.Addr().String(), stop
}

// benchChunk is the client's write size and the bytes of one benchmark op.
const benchChunk = 1 << 20

// benchPush writes n chunks of benchChunk bytes to c, half-closes it and checks
// the count the sink answers: every byte arrived.
func benchPush(c net.Conn, n int, chunk []byte) error {
	for i := 0; i < n; i++ {
		if _, err := c.Write(chunk); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	var cnt [8]byte
	if _, err := io.ReadFull(c, cnt[:]); err != nil {
		return fmt.Errorf("read count: %w", err)
	}
	if got, want := binary.BigEndian.Uint64(cnt[:]), uint64(n)*benchChunk; got != want {
		return fmt.Errorf("sink got %d bytes, sent %d", got, want)
	}
	return nil
}

// The direct baseline: CPU seconds per GB of a client writing to the sink
// over one direct loopback TCP connection. Measured once per process.
var benchDirect struct {
	once   sync.Once
	cpuGB  float64
	failed error
}

func benchDirectBaseline(b *testing.B) float64 {
	benchDirect.once.Do(func() {
		addr, stop := startBenchSink(b)
		defer stop()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			benchDirect.failed = err
			return
		}
		defer c.Close()
		const chunks = 512 // 512 MiB
		chunk := make([]byte, benchChunk)
		cpu0 := benchProcCPU(b)
		if err := benchPush(c, chunks, chunk); err != nil {
			benchDirect.failed = err
			return
		}
		cpu := benchProcCPU(b) - cpu0
		benchDirect.cpuGB = cpu.Seconds() / (float64(chunks) * benchChunk / 1e9)
	})
	if benchDirect.failed != nil {
		b.Fatalf("direct baseline: %v", benchDirect.failed)
	}
	return benchDirect.cpuGB
}

// benchThroughput pushes b.N MiB through the connection dial returns
// (timed: the writes and the sink's count; not timed: the dial and the
// session open) and reports the process CPU per GB (1e9 bytes) moved.
// With chain set it also reports "node-cpu-s/GB": the same minus the direct
// baseline, i.e. the CPU the nodes add. The client's writes and the sink's
// reads are the same syscalls on the same data in both cases, so the
// difference is the entry, relay and destination nodes' work: their reads
// and writes of the sockets and links, yamux and the splices.
func benchThroughput(b *testing.B, dial func() (net.Conn, error), chain bool) {
	var base float64
	if chain {
		base = benchDirectBaseline(b)
	}
	c, err := dial()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	chunk := make([]byte, benchChunk)
	for i := range chunk {
		chunk[i] = byte(i * 7)
	}
	b.SetBytes(benchChunk)
	runtime.GC()
	b.ResetTimer()
	cpu0 := benchProcCPU(b)
	if err := benchPush(c, b.N, chunk); err != nil {
		b.Fatal(err)
	}
	cpu := benchProcCPU(b) - cpu0
	b.StopTimer()
	gb := float64(b.N) * benchChunk / 1e9
	b.ReportMetric(cpu.Seconds()/gb, "cpu-s/GB")
	if chain {
		b.ReportMetric(cpu.Seconds()/gb-base, "node-cpu-s/GB")
		b.ReportMetric(base, "direct-cpu-s/GB")
	}
}

// BenchmarkThroughputDirect: a client writing to a discarding sink over
// one direct loopback TCP connection, for comparison.
func BenchmarkThroughputDirect(b *testing.B) {
	addr, stop := startBenchSink(b)
	defer stop()
	benchThroughput(b, func() (net.Conn, error) { return net.Dial("tcp", addr) }, false)
}

// benchThroughputLine: the client connects to the leaf's entry; the session
// crosses hops links (Plaintext if plain) to the root, which dials the sink.
func benchThroughputLine(b *testing.B, hops int, plain bool) {
	addr, stop := startBenchSink(b)
	ln := listenEntry(b)
	line := startBenchLine(b, hops, plain, map[string]mux.Service{"sink": {Addrs: []string{addr}}},
		[]muxtest.Option{muxtest.WithEntry(ln, "bench", "root", "sink")})
	entryAddr := ln.Addr().String()
	benchThroughput(b, func() (net.Conn, error) { return net.Dial("tcp", entryAddr) }, true)
	line.waitDrained(b)
	stop()
}

// BenchmarkThroughputChain: the four-node chain, leaf entry -> relay2 ->
// relay1 -> root -> sink; sub-benchmarks tls and plain.
func BenchmarkThroughputChain(b *testing.B) {
	benchBothVariants(b, func(b *testing.B, plain bool) { benchThroughputLine(b, 3, plain) })
}

// BenchmarkThroughputLeafRelayRoot: leaf entry -> relay -> root -> sink,
// the chain the CPU target is set for (node-cpu-s/GB at most 1);
// sub-benchmarks tls and plain.
func BenchmarkThroughputLeafRelayRoot(b *testing.B) {
	benchBothVariants(b, func(b *testing.B, plain bool) { benchThroughputLine(b, 2, plain) })
}

// startBenchTCPRelay accepts connections and copies each to a new connection to
// next, both ways, with plain 64 KiB read/write loops (no yamux, no
// framing, no splice(2)) and half-close. It returns its address.
func startBenchTCPRelay(b *testing.B, next string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	copyHalf := func(dst, src *net.TCPConn) {
		buf := make([]byte, 64<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				_ = dst.CloseWrite()
				return
			}
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d, err := net.Dial("tcp", next)
			if err != nil {
				_ = c.Close()
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				defer d.Close()
				done := make(chan struct{})
				go func() {
					defer close(done)
					copyHalf(d.(*net.TCPConn), c.(*net.TCPConn))
				}()
				copyHalf(c.(*net.TCPConn), d.(*net.TCPConn))
				<-done
			}()
		}
	}()
	b.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// BenchmarkThroughputTCPRelayFloor: the shape of leaf-relay-root without
// the relay chain: client -> three plain TCP relays in a row -> sink. Its
// node-cpu-s/GB is what three user-space hops cost in the kernel alone (the
// copies through three more loopback connections), a floor for
// BenchmarkThroughputLeafRelayRoot's.
func BenchmarkThroughputTCPRelayFloor(b *testing.B) {
	addr, stop := startBenchSink(b)
	defer stop()
	entryAddr := startBenchTCPRelay(b, startBenchTCPRelay(b, startBenchTCPRelay(b, addr)))
	benchThroughput(b, func() (net.Conn, error) { return net.Dial("tcp", entryAddr) }, true)
}
