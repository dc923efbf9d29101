package muxtest

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/mux"
)

// FastTuning shortens keepalive, timeouts and backoff so that faults show
// and links come back quickly. A test that needs other values changes the
// ones it needs on the result.
func FastTuning() mux.Tuning {
	t := mux.DefaultTuning()
	t.KeepAliveInterval = 500 * time.Millisecond
	t.WriteTimeout = time.Second
	t.StreamCloseTimeout = 5 * time.Second
	t.HelloTimeout = 2 * time.Second
	t.OpenTimeout = 5 * time.Second
	t.DialTimeout = 2 * time.Second
	t.BackoffMin = 20 * time.Millisecond
	t.BackoffMax = 200 * time.Millisecond
	t.ReconnectSpread = 50 * time.Millisecond
	t.ShutdownAbortWait = 10 * time.Second
	t.RefusalLogBurst = 1000 // tests assert each refusal in the log
	return t
}

// An Option changes how StartNode starts a node.
type Option func(*nodeOptions)

type nodeOptions struct {
	log     *logrus.Entry
	entries []entry
	stop    *func()

	addrEntries []addrEntry
}

type addrEntry struct {
	ln net.Listener
	e  mux.AddrEntry
}

// WithAddrEntry makes ln an entry that takes each session's destination
// from its client, SOCKS5 or HTTP CONNECT (mux.Node.AddAddrEntry). The
// node closes ln.
func WithAddrEntry(ln net.Listener, e mux.AddrEntry) Option {
	return func(o *nodeOptions) { o.addrEntries = append(o.addrEntries, addrEntry{ln, e}) }
}

type entry struct {
	ln  net.Listener
	cfg mux.EntryConfig
}

// WithEntry makes ln an entry of the node (mux.Node.AddEntry): every
// connection accepted on it becomes a session to service at dest. The node
// closes ln.
func WithEntry(ln net.Listener, name, dest, service string) Option {
	return WithEntryConfig(ln, mux.EntryConfig{Name: name, Dest: dest, Service: service})
}

// WithEntryConfig makes ln an entry as e says (mux.Node.AddEntryWith), its
// rules included. The node closes ln.
func WithEntryConfig(ln net.Listener, e mux.EntryConfig) Option {
	return func(o *nodeOptions) { o.entries = append(o.entries, entry{ln, e}) }
}

// WithLog gives the node log instead of Log(t): a logger with hooks that
// keep what was logged, or a silent one for benchmarks.
func WithLog(log *logrus.Entry) Option {
	return func(o *nodeOptions) { o.log = log }
}

// WithStop stores in *stop a function that stops the node before the test
// ends: it ends Serve, waits for it and shuts the node down with a grace
// period of 5s. Calling it again does nothing; the test's cleanup calls it
// too.
func WithStop(stop *func()) Option {
	return func(o *nodeOptions) { o.stop = stop }
}

// StartNode creates a node from cfg (its listen sockets bound), runs Serve
// in a goroutine, and registers with the test the node's stop: Serve ended
// and waited for, then Shutdown with a grace period of 5s.
func StartNode(t testing.TB, cfg mux.Config, opts ...Option) *mux.Node {
	t.Helper()
	var o nodeOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = Log(t)
	}
	cfg = WithTLS(t, cfg)
	n, err := mux.New(cfg, o.log)
	if err != nil {
		for _, e := range o.entries {
			_ = e.ln.Close()
		}
		for _, e := range o.addrEntries {
			_ = e.ln.Close()
		}
		t.Fatalf("new %s: %v", cfg.Label, err)
	}
	for _, e := range o.entries {
		n.AddEntryWith(e.ln, e.cfg)
	}
	for _, e := range o.addrEntries {
		n.AddAddrEntry(e.ln, e.e)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = n.Serve(ctx)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-served
			sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer scancel()
			_ = n.Shutdown(sctx)
		})
	}
	t.Cleanup(stop)
	if o.stop != nil {
		*o.stop = stop
	}
	return n
}

// StartPair starts a root ("epp") offering handler as service "events" and
// a leaf ("es-a") below it, and waits until the leaf can reach the root.
func StartPair(t testing.TB, handler func(context.Context, *mux.Conn)) (root, leaf *mux.Node) {
	t.Helper()
	root = StartNode(t, mux.Config{Label: "epp", Role: mux.RoleRoot, Tuning: FastTuning(),
		Services: map[string]mux.Service{"events": {Handler: handler}},
		Links:    []mux.LinkConfig{{Peer: "es-a", Listen: "127.0.0.1:0"}}})
	leaf = StartNode(t, mux.Config{Label: "es-a", Role: mux.RoleLeaf, Tuning: FastTuning(),
		Links: []mux.LinkConfig{{Peer: "epp", Parent: true, Dial: root.LinkAddr("es-a").String()}}})
	WaitFor(t, 10*time.Second, "the leaf's route to the root", func() bool {
		p := leaf.PathToRoot()
		return len(p) == 1 && p[0] == "epp" && root.Routes()["es-a"] == "es-a"
	})
	return root, leaf
}
