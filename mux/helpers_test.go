package mux

import (
	"context"
	"crypto/sha256"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// testLog returns a logger that writes to t.Log and goes quiet when the
// test ends. MUX_TEST_LOG=N sets the numeric level (default 2: warnings).
func testLog(t testing.TB) *logrus.Entry {
	t.Helper()
	lg := logrus.New()
	lg.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true})
	w := &tbWriter{t: t}
	t.Cleanup(w.stop)
	lg.SetOutput(w)
	lg.SetLevel(logrus.WarnLevel)
	if v, err := strconv.Atoi(os.Getenv("MUX_TEST_LOG")); err == nil {
		lg.SetLevel(logrus.Level(v + 1))
	}
	return logrus.NewEntry(lg)
}

type tbWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *tbWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(p[:len(p)-1]))
	}
	return len(p), nil
}

func (w *tbWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// fastTuning shortens the timeouts so fault tests finish quickly.
func fastTuning() Tuning {
	t := DefaultTuning()
	t.KeepAliveInterval = 500 * time.Millisecond
	t.WriteTimeout = 1 * time.Second
	t.StreamCloseTimeout = 5 * time.Second
	t.HelloTimeout = 2 * time.Second
	t.OpenTimeout = 5 * time.Second
	t.DialTimeout = 2 * time.Second
	t.BackoffMin = 20 * time.Millisecond
	t.BackoffMax = 200 * time.Millisecond
	t.ShutdownAbortWait = 10 * time.Second
	return t
}

// startNode starts a node and registers its shutdown.
func startNode(t testing.TB, cfg Config) *Node {
	t.Helper()
	n, err := New(cfg, testLog(t))
	if err != nil {
		t.Fatalf("new %s: %v", cfg.Label, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = n.Serve(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-served
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = n.Shutdown(sctx)
	})
	return n
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// echoServer accepts connections and writes back what it reads, then
// half-closes. It returns its address and counts its open connections.
type echoServer struct {
	ln    net.Listener
	open  atomic.Int64
	wg    sync.WaitGroup
	conns sync.Map
}

func startEcho(t testing.TB) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoServer{ln: ln}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.open.Add(1)
			e.conns.Store(c, true)
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				defer e.open.Add(-1)
				defer e.conns.Delete(c)
				defer c.Close()
				_, _ = io.Copy(c, c)
				_ = c.(*net.TCPConn).CloseWrite()
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		e.conns.Range(func(k, _ any) bool { _ = k.(net.Conn).Close(); return true })
		e.wg.Wait()
	})
	return e
}

func (e *echoServer) addr() string { return e.ln.Addr().String() }

// sinkServer reads everything, answers with the SHA-256 of what it read
// followed by `reply` bytes of a pattern, and closes.
func startHashServer(t testing.TB, reply int64) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
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
				h := sha256.New()
				if _, err := io.Copy(h, c); err != nil {
					return
				}
				if _, err := c.Write(h.Sum(nil)); err != nil {
					return
				}
				_, _ = io.CopyN(c, newPattern(7), reply)
				_ = c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// pattern is a cheap deterministic byte stream.
type pattern struct{ x uint64 }

func newPattern(seed uint64) *pattern { return &pattern{x: seed*0x9E3779B97F4A7C15 + 1} }

func (p *pattern) Read(b []byte) (int, error) {
	for i := range b {
		p.x ^= p.x << 13
		p.x ^= p.x >> 7
		p.x ^= p.x << 17
		b[i] = byte(p.x)
	}
	return len(b), nil
}

// listenEntry opens an entry listener on a free loopback port.
func listenEntry(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}
