package mux

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// This file holds the bounds on what the network can make a node do
// before it trusts a peer: the rate of new handshakes per listen address,
// hellos in progress per listen address and per source address, and logs
// of refusals that a flood cannot flood.

// refusalInterval is the refusal log's interval: in each, the first
// Tuning.RefusalLogBurst refusals are logged in full; the rest are counted
// and summed up in one line when it ends.
const refusalInterval = time.Minute

// refusalLog logs refusals of peers (failed handshakes, connections over
// the caps, forged origins) at level 1 without letting a flood flood the
// log: the first few in each interval in full, then one summary line per
// interval with the count and the top sources.
type refusalLog struct {
	log   *logrus.Entry
	what  string // "link connections refused", in the summary
	burst int

	mu         sync.Mutex
	all        uint64 // every refusal noted or counted
	start      time.Time
	shown      int
	suppressed int
	sources    map[string]int

	// level is the level of its lines: logrus.ErrorLevel (level 1) for
	// refusals of peers, InfoLevel (3) for sessions denied by rules.
	level logrus.Level
	// tuned, when set, gives the burst in force (follow).
	tuned func() int
}

// follow makes r take its burst from n's tuning in force, so that a
// reconfiguration changes it.
func (r *refusalLog) follow(n *Node) *refusalLog {
	r.tuned = func() int { return n.tuning().RefusalLogBurst }
	return r
}

func newRefusalLog(log *logrus.Entry, what string, burst int) *refusalLog {
	return newRefusalLogAt(log, what, burst, logrus.ErrorLevel)
}

func newRefusalLogAt(log *logrus.Entry, what string, burst int, level logrus.Level) *refusalLog {
	return &refusalLog{log: log, what: what, burst: burst, sources: map[string]int{}, level: level}
}

// note logs one refusal from source: in full with e and msg while the
// interval's burst lasts, else only counted.
func (r *refusalLog) note(source string, e *logrus.Entry, msg string) {
	r.mu.Lock()
	r.all++
	now := time.Now()
	if r.start.IsZero() || now.Sub(r.start) >= refusalInterval {
		r.summaryLocked()
		r.start, r.shown = now, 0
	}
	burst := r.burst
	if r.tuned != nil {
		burst = r.tuned()
	}
	if r.shown < burst {
		r.shown++
		r.mu.Unlock()
		e.Log(r.level, msg)
		return
	}
	r.suppressed++
	r.sources[source]++
	r.mu.Unlock()
}

// count counts a refusal that is never logged in full (a connection
// closed at once over a cap).
func (r *refusalLog) count(source string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all++
	if r.start.IsZero() {
		r.start = time.Now()
	}
	r.suppressed++
	r.sources[source]++
}

// total is how many refusals there were.
func (r *refusalLog) total() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.all
}

// flush writes the summary of what was not logged in full, if anything,
// and starts a new interval.
func (r *refusalLog) flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.summaryLocked()
	r.start, r.shown = time.Time{}, 0
}

func (r *refusalLog) summaryLocked() {
	if r.suppressed == 0 {
		return
	}
	type src struct {
		addr string
		n    int
	}
	var top []src
	for a, n := range r.sources {
		top = append(top, src{a, n})
	}
	sort.Slice(top, func(i, j int) bool { return top[i].n > top[j].n || top[i].n == top[j].n && top[i].addr < top[j].addr })
	if len(top) > 5 {
		top = top[:5]
	}
	parts := make([]string, len(top))
	for i, s := range top {
		parts[i] = fmt.Sprintf("%s x%d", s.addr, s.n)
	}
	r.log.WithFields(logrus.Fields{"count": r.suppressed, "sources": len(r.sources), "top": strings.Join(parts, ",")}).
		Logf(r.level, "%d more %s since %s, not logged one by one", r.suppressed, r.what, r.start.Format("15:04:05"))
	r.suppressed = 0
	r.sources = map[string]int{}
}

// sourceOf is the address a connection comes from, without its port.
func sourceOf(c net.Conn) string {
	a := c.RemoteAddr().String()
	if h, _, err := net.SplitHostPort(a); err == nil {
		return h
	}
	return a
}

// helloGate caps the connections of one link listener that are still in
// their TLS handshake or hello, in all and per source address.
type helloGate struct {
	max, perSource int

	mu       sync.Mutex
	inflight int
	peak     int // the most in progress at once since the node started
	bySource map[string]int
}

// enter admits a new connection from source, or reports false when a cap
// is reached; an admitted one must leave.
func (g *helloGate) enter(source string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.inflight >= g.max || g.bySource[source] >= g.perSource {
		return false
	}
	if g.bySource == nil {
		g.bySource = map[string]int{}
	}
	g.inflight++
	g.peak = max(g.peak, g.inflight)
	g.bySource[source]++
	return true
}

// leave ends a connection's hello.
func (g *helloGate) leave(source string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inflight--
	if g.bySource[source]--; g.bySource[source] <= 0 {
		delete(g.bySource, source)
	}
}

// inProgress is how many hellos are in progress.
func (g *helloGate) inProgress() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inflight
}

// handshakeBucket paces the new connections of one link listener: a token
// bucket of burst tokens filled at rate per second. A reconnect storm (the
// children of a node that restarted, all dialling again) is admitted at
// the rate, so that their TLS handshakes do not starve the node's links
// that are up; the connections not admitted yet wait in the kernel's
// listen queue, which holds no descriptor, goroutine or CPU of the node.
type handshakeBucket struct {
	limits func() (rate float64, burst int) // read at each take: a reconfiguration applies at once

	mu     sync.Mutex
	tokens float64
	last   time.Time
	filled bool
}

func newHandshakeBucket(limits func() (float64, int)) *handshakeBucket {
	return &handshakeBucket{limits: limits}
}

// take takes a token, waiting for one until ctx ends; it reports false
// when ctx ended (or had ended) first.
func (b *handshakeBucket) take(ctx context.Context) bool {
	for ctx.Err() == nil {
		rate, burst := b.limits()
		b.mu.Lock()
		now := time.Now()
		if !b.filled {
			b.tokens, b.filled = float64(burst), true
		} else {
			b.tokens = min(float64(burst), b.tokens+now.Sub(b.last).Seconds()*rate)
		}
		b.last = now
		if b.tokens >= 1 {
			b.tokens--
			b.mu.Unlock()
			return true
		}
		wait := time.Duration((1 - b.tokens) / rate * float64(time.Second))
		b.mu.Unlock()
		if !SleepCtx(ctx, max(wait, time.Millisecond)) {
			return false
		}
	}
	return false
}

// pacedListener accepts a connection only once the bucket gives a token:
// until then new connections wait in the listen queue. Accept reports
// net.ErrClosed once ctx ends.
type pacedListener struct {
	net.Listener
	ctx    context.Context
	bucket *handshakeBucket
}

func (p pacedListener) Accept() (net.Conn, error) {
	if !p.bucket.take(p.ctx) {
		return nil, net.ErrClosed
	}
	return p.Listener.Accept()
}

// Stats counts what the node refused of its neighbours since it started.
type Stats struct {
	// RefusedAnnouncements counts announcements from children refused in
	// part (own, ancestors' or parents' labels) or whole (over a cap).
	RefusedAnnouncements uint64
	// RefusedConnections counts link connections refused before or at the
	// hello, those closed at once over the hello caps included.
	RefusedConnections uint64
	// ForgedOrigins counts sessions refused for their origin.
	ForgedOrigins uint64

	// DeniedDestinations counts sessions of the address form refused by
	// the node that would serve them: the address is not in its networks.
	DeniedDestinations uint64
	// DeniedByRules counts sessions an entry's or a service's rules (or
	// allow list, or default) denied.
	DeniedByRules uint64

	// RefusedNetworks counts networks announced by children outside the
	// accepted networks of their link (accept.go).
	RefusedNetworks uint64

	// DeniedResolved counts sessions of the address form refused by the
	// node that serves them because no address their name resolved to
	// may be dialled (resolve.go); each is counted in DeniedByRules too.
	DeniedResolved uint64

	// RefusedLabels counts labels announced by children outside the
	// accepted labels of their link (acceptlabels.go).
	RefusedLabels uint64
}

// Stats returns the node's counts of refusals.
func (n *Node) Stats() Stats {
	n.table.mu.Lock()
	ra, rn, rl := n.table.refused, n.table.refusedNets, n.table.refusedLabels
	n.table.mu.Unlock()
	return Stats{RefusedAnnouncements: ra, RefusedConnections: n.refusals.total(), ForgedOrigins: n.denials.total(),
		DeniedDestinations: n.destDenials.total(), DeniedByRules: n.ruleLog.total(), RefusedNetworks: rn,
		DeniedResolved: n.resolveDenied.Load(), RefusedLabels: rl}
}

// summaryLoop writes the refusal summaries once per interval, and a last
// time when the node stops accepting.
func (n *Node) summaryLoop() {
	t := time.NewTicker(refusalInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-n.acceptCtx.Done():
			n.refusals.flush()
			n.denials.flush()
			n.ruleLog.flush()
			n.destDenials.flush()
			n.table.acceptLog.flush()
			n.authLog.flush()
			return
		}
		n.refusals.flush()
		n.denials.flush()
		n.ruleLog.flush()
		n.destDenials.flush()
		n.table.acceptLog.flush()
		n.authLog.flush()
	}
}
