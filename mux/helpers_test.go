package mux_test

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// chain is the four-node test tree: root <- relay1 <- relay2 <- leaf.
// root-relay1 is dialled by the parent (root dials relay1), relay1-relay2
// and relay2-leaf by the child (relay2 dials relay1, the leaf relay2).
type chain struct {
	root, r1, r2, leaf *mux.Node
}

type chainOpts struct {
	tuning       mux.Tuning
	rootServices map[string]mux.Service
	leafServices map[string]mux.Service
	rootOpts     []muxtest.Option // the root's entries
	leafOpts     []muxtest.Option // the leaf's entries
	r1Listen     string           // fixed relay1 address (for restart tests)
	r2Listen     string
	plaintext    bool // every link insecure_plaintext (for raw hello tests)
}

// startChain starts the chain with o, waits until every node learned its
// routes, and checks at the end of the test, before the nodes shut down,
// that no session is left in any node's table.
func startChain(t testing.TB, o chainOpts) *chain {
	t.Helper()
	return startTestChain(t, tchainOpts{chainOpts: o}).chain
}

func (c *chain) waitRoutes(t testing.TB) {
	t.Helper()
	muxtest.WaitFor(t, 10*time.Second, "routes to be learned", func() bool {
		r := c.root.Routes()
		return r["relay1"] == "relay1" && r["relay2"] == "relay1" && r["leaf"] == "relay1" &&
			c.r1.Routes()["leaf"] == "relay2" && c.r2.Routes()["leaf"] == "leaf" &&
			len(c.leaf.PathToRoot()) == 3
	})
}

func (c *chain) nodes() []*mux.Node { return []*mux.Node{c.root, c.r1, c.r2, c.leaf} }

// tchain is the four-node chain with what fault tests need beside it:
// every node's log kept in a sink, proxies in front of relay1's links,
// fixed addresses, and start-up from the leaf upwards.
type tchain struct {
	*chain
	t         testing.TB
	tun       mux.Tuning
	logs      map[string]*logSink // by label
	plaintext bool
	r1Addr    string // relay1's link listen address
	// rootProxy carries root-relay1, childProxy relay2-relay1 (proxied).
	rootProxy, childProxy *faultProxy

	trace bool // every node logs at level 5 (the sinks see everything)
}

type tchainOpts struct {
	chainOpts
	proxied   bool // put a faultProxy in front of each of relay1's links
	leafFirst bool // start the leaf first and the root last

	trace bool // every node logs at level 5
}

func relay1Config(tun mux.Tuning, addr string) mux.Config {
	return mux.Config{Label: "relay1", Role: mux.RoleRelay, Tuning: tun, Links: []mux.LinkConfig{
		{Peer: "root", Parent: true, Listen: addr},
		{Peer: "relay2", Listen: addr},
	}}
}

// startTestChain starts the chain with o (relay1, root, relay2, leaf; or
// from the leaf upwards), waits until every node learned its routes, and
// checks at the end of the test, before the nodes shut down, that no
// session is left in any node's table.
func startTestChain(t testing.TB, o tchainOpts) *tchain {
	t.Helper()
	if o.tuning == (mux.Tuning{}) {
		o.tuning = muxtest.FastTuning()
	}
	tc := &tchain{chain: &chain{}, t: t, tun: o.tuning, logs: map[string]*logSink{}, plaintext: o.plaintext, trace: o.trace}
	r1, r2 := o.r1Listen, o.r2Listen
	if o.leafFirst || o.proxied {
		// The dialling sides need the addresses before the listeners
		// exist.
		if r1 == "" {
			r1 = freeAddr(t)
		}
		if r2 == "" {
			r2 = freeAddr(t)
		}
	}
	if r1 == "" {
		r1 = "127.0.0.1:0"
	}
	if r2 == "" {
		r2 = "127.0.0.1:0"
	}
	startR1 := func() {
		tc.r1 = tc.start(relay1Config(o.tuning, r1))
		tc.r1Addr = tc.r1.LinkAddr("root").String()
	}
	rootDial, r2Dial := func() string { return tc.r1Addr }, func() string { return tc.r1Addr }
	if o.proxied {
		tc.r1Addr = r1
		tc.rootProxy, tc.childProxy = startProxy(t, r1), startProxy(t, r1)
		rootDial = tc.rootProxy.addr
		r2Dial = tc.childProxy.addr
	}
	startRoot := func() {
		tc.root = tc.start(mux.Config{Label: "root", Role: mux.RoleRoot, Tuning: o.tuning, Services: o.rootServices, Links: []mux.LinkConfig{
			{Peer: "relay1", Dial: rootDial()},
		}}, o.rootOpts...)
	}
	startR2 := func() {
		tc.r2 = tc.start(mux.Config{Label: "relay2", Role: mux.RoleRelay, Tuning: o.tuning, Links: []mux.LinkConfig{
			{Peer: "relay1", Parent: true, Dial: r2Dial()},
			{Peer: "leaf", Listen: r2},
		}})
	}
	startLeaf := func(r2 string) {
		tc.leaf = tc.start(mux.Config{Label: "leaf", Role: mux.RoleLeaf, Tuning: o.tuning, Services: o.leafServices, Links: []mux.LinkConfig{
			{Peer: "relay2", Parent: true, Dial: r2},
		}}, o.leafOpts...)
	}
	if o.leafFirst {
		if !o.proxied {
			tc.r1Addr = r1
		}
		startLeaf(r2)
		startR2()
		muxtest.WaitFor(t, 5*time.Second, "the leaf to connect to relay2", func() bool { return len(tc.r2.Links()) == 1 })
		startR1()
		startRoot()
	} else {
		startR1()
		startRoot()
		startR2()
		startLeaf(tc.r2.LinkAddr("leaf").String())
	}
	tc.waitRoutes(t)
	t.Cleanup(tc.checkDrained)
	return tc
}

// start starts a node whose log goes to the test and to a sink.
func (tc *tchain) start(cfg mux.Config, opts ...muxtest.Option) *mux.Node {
	tc.t.Helper()
	if tc.plaintext {
		for i := range cfg.Links {
			cfg.Links[i].Plaintext = true
		}
	}
	log, sink := captureLog(tc.t)
	if tc.trace {
		log.Logger.SetLevel(logrus.TraceLevel)
	}
	tc.logs[cfg.Label] = sink
	return muxtest.StartNode(tc.t, cfg, append([]muxtest.Option{muxtest.WithLog(log)}, opts...)...)
}

// checkDrained is the end-of-test check that no session is left in any
// node's table.
func (tc *tchain) checkDrained() {
	checkNoSessions(tc.t, tc.nodes()...)
}

// checkNoSessions fails the test, without stopping it (it runs in
// cleanups), when a node still carries a session after a short wait.
func checkNoSessions(t testing.TB, nodes ...*mux.Node) {
	t.Helper()
	if t.Failed() {
		return // the failure is reported already
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := map[string]int{}
		for _, n := range nodes {
			if s := n.Sessions(); s != 0 {
				left[n.Label()] = s
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("sessions left at the end of the test: %v", left)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// assertDrained waits until no node carries a session.
func assertDrained(t testing.TB, nodes ...*mux.Node) {
	t.Helper()
	muxtest.WaitFor(t, 10*time.Second, "sessions to drain", func() bool {
		for _, n := range nodes {
			if n.Sessions() != 0 {
				return false
			}
		}
		return true
	})
}

func freeAddr(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(muxtest.FreePort(t))
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

// logSink is a logrus hook that keeps every entry a node logs, so a test
// can assert what was logged, at which level and with which error.
type logSink struct {
	mu      sync.Mutex
	entries []logRecord
}

type logRecord struct {
	Level   logrus.Level
	Message string
	Data    logrus.Fields
}

// err is the error attached with WithError, or nil.
func (r logRecord) err() error {
	e, _ := r.Data[logrus.ErrorKey].(error)
	return e
}

func (s *logSink) Levels() []logrus.Level { return logrus.AllLevels }

func (s *logSink) Fire(e *logrus.Entry) error {
	data := make(logrus.Fields, len(e.Data))
	for k, v := range e.Data {
		data[k] = v
	}
	s.mu.Lock()
	s.entries = append(s.entries, logRecord{Level: e.Level, Message: e.Message, Data: data})
	s.mu.Unlock()
	return nil
}

// find returns the first record that match accepts.
func (s *logSink) find(match func(logRecord) bool) (logRecord, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.entries {
		if match(r) {
			return r, true
		}
	}
	return logRecord{}, false
}

// waitLog waits until a record that match accepts was logged.
func (s *logSink) waitLog(t testing.TB, what string, match func(logRecord) bool) logRecord {
	t.Helper()
	var rec logRecord
	muxtest.WaitFor(t, 10*time.Second, "log: "+what, func() bool {
		var ok bool
		rec, ok = s.find(match)
		return ok
	})
	return rec
}

// errorWith matches an error-level record whose error text contains every
// one of parts. (The message text is not matched: the reason is in the
// error.)
func errorWith(parts ...string) func(logRecord) bool {
	return func(r logRecord) bool {
		if r.Level != logrus.ErrorLevel || r.err() == nil {
			return false
		}
		for _, p := range parts {
			if !strings.Contains(r.err().Error(), p) {
				return false
			}
		}
		return true
	}
}

// captureLog is muxtest.Log with every entry also kept in the returned sink.
func captureLog(t testing.TB) (*logrus.Entry, *logSink) {
	t.Helper()
	log := muxtest.Log(t)
	sink := &logSink{}
	log.Logger.AddHook(sink)
	return log, sink
}
