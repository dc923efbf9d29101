package mux

import (
	"fmt"
	"time"

	"github.com/hashicorp/yamux"
)

// Tuning holds the timeouts, limits and yamux settings. The same values
// must be set on both ends of a link (they are the node's, for all links).
type Tuning struct {
	// WindowSize is yamux's maximum per-stream receive window. Default
	// 8 MiB; yamux's own minimum is 256 KiB.
	WindowSize uint32
	// KeepAliveInterval is how often a link is pinged. Default 10s. A link
	// cut without a FIN is noticed within KeepAliveInterval+WriteTimeout.
	KeepAliveInterval time.Duration
	// WriteTimeout bounds a write on a link and the wait for a keepalive
	// answer. Default 10s.
	WriteTimeout time.Duration
	// StreamCloseTimeout, when positive, resets a stream closed at one end
	// whose other end has not closed within it. Default 0: off. The ends
	// and relays close every stream themselves (when a session ends, an
	// abort, a timeout) and a dead link releases all of its streams, so the
	// timer only guards against a peer that never closes; but it also cuts
	// the tail of a clean session whose reader drains slower than the
	// timeout (8 MiB of window per hop at 140 KB/s takes a minute).
	StreamCloseTimeout time.Duration
	// AcceptBacklog is how many opened streams may wait to be accepted on
	// a link. Default 1024.
	AcceptBacklog int
	// HelloTimeout bounds the hello exchange on a new connection. Default 10s.
	HelloTimeout time.Duration
	// OpenTimeout bounds a session open: reading the open header on each
	// hop and waiting for the status. Default 15s.
	OpenTimeout time.Duration
	// DialTimeout bounds the destination's dial of a service address.
	// Default 10s. Keep it below OpenTimeout.
	DialTimeout time.Duration
	// IdleTimeout aborts a session that moved no byte either way for this
	// long, on every node it crosses. Zero: no idle timeout (the default).
	IdleTimeout time.Duration
	// PeerWriteTimeout aborts a session whose TCP peer at an end (the
	// client of an entry, the target of a service) takes no byte of what
	// the session has for it for this long: a peer that stopped reading
	// would otherwise hold the session, and its sockets on every node, for
	// ever. DefaultTuning sets 60s; zero: no limit (as peer_write_timeout: 0
	// in a configuration file, and as IdleTimeout and StreamCloseTimeout).
	PeerWriteTimeout time.Duration
	// BackoffMin and BackoffMax bound the reconnect backoff of dialled
	// links (exponential, with jitter). Defaults 500ms and 30s.
	BackoffMin, BackoffMax time.Duration
	// MaxSessions caps the sessions a node carries at once; an open beyond
	// it is refused. Default 50000; zero: the default.
	MaxSessions int
	// ShutdownAbortWait bounds how long Shutdown waits for goroutines after
	// it aborted what was left. Default 5s.
	ShutdownAbortWait time.Duration

	// The caps below bound what a neighbour can make a node hold; zero is
	// the default. A real site never meets them; a flood does.

	// MaxLabelsPerLink caps the labels one child may announce (its subtree);
	// an announcement over it is refused whole. Default 10000.
	MaxLabelsPerLink int
	// MaxRoutes caps the routing table; an announcement that would pass it
	// is refused whole. Default 100000.
	MaxRoutes int
	// MaxSessionsPerLink caps the sessions that arrive through one link.
	// Default 30000.
	MaxSessionsPerLink int
	// MaxSessionsPerOrigin caps the sessions of one origin label on this
	// node. Default 20000.
	MaxSessionsPerOrigin int
	// MaxHellos caps the link connections in their TLS handshake or hello
	// on one listen address, and MaxHellosPerSource those from one source
	// address; beyond them a new connection is closed at once, counted in
	// the refusal summary. Defaults 64 and 8.
	MaxHellos, MaxHellosPerSource int
	// RefusalLogBurst is how many refused link connections (and sessions
	// refused for a forged origin) are logged in full per minute; the rest
	// are summed up in one line a minute with their top sources. Default
	// 10.
	RefusalLogBurst int

	// Reconnect storms: when a node with many children restarts, they
	// come back spread over time and are admitted at a bounded rate.

	// ReconnectSpread spreads the first reconnect of a dialled link that
	// was up and went down: it waits the backoff's first step plus a
	// random part of ReconnectSpread, so that the children of a node that
	// restarts do not all come back in the same second. Default 2s; zero:
	// the default.
	ReconnectSpread time.Duration
	// MaxHandshakeRate is how many new link connections per second one
	// listen address admits to their TLS handshake and hello (a token
	// bucket, HandshakeBurst deep); beyond it a new connection waits in
	// the listen queue, where it costs the node nothing, until a token is
	// free. Defaults 200 per second and a burst of 64; zero: the default.
	MaxHandshakeRate float64
	HandshakeBurst   int

	// The status query of the tree (PROTOCOL.md section 2.1); zero is the
	// default.

	// TreeTimeout bounds how long the root waits for the tree's answer; each
	// hop gives its children three quarters of the time it was given, and a
	// child that does not answer in that time shows as "no answer".
	// Default 5s.
	TreeTimeout time.Duration
	// TreeAnswerMax caps a node's answer to a tree query, in bytes: an
	// answer over it is cut down by its sender (the deepest levels first)
	// and refused by its reader. Default 1 MiB.
	TreeAnswerMax int
}

// DefaultTuning returns the defaults documented on Tuning.
func DefaultTuning() Tuning {
	return Tuning{
		WindowSize:         8 << 20,
		KeepAliveInterval:  10 * time.Second,
		WriteTimeout:       10 * time.Second,
		StreamCloseTimeout: 0,
		AcceptBacklog:      1024,
		HelloTimeout:       10 * time.Second,
		OpenTimeout:        15 * time.Second,
		DialTimeout:        10 * time.Second,
		BackoffMin:         500 * time.Millisecond,
		BackoffMax:         30 * time.Second,
		MaxSessions:        50000,
		ShutdownAbortWait:  5 * time.Second,
		PeerWriteTimeout:   60 * time.Second,

		MaxLabelsPerLink:     10000,
		MaxRoutes:            100000,
		MaxSessionsPerLink:   30000,
		MaxSessionsPerOrigin: 20000,
		MaxHellos:            64,
		MaxHellosPerSource:   8,
		RefusalLogBurst:      10,

		ReconnectSpread:  2 * time.Second,
		MaxHandshakeRate: 200,
		HandshakeBurst:   64,

		TreeTimeout:   defaultTreeTimeout,
		TreeAnswerMax: defaultTreeAnswerMax,
	}
}

// withDefaults fills the zero fields of t with the defaults, except those
// where zero means off: StreamCloseTimeout, IdleTimeout, PeerWriteTimeout.
func (t Tuning) withDefaults() Tuning {
	d := DefaultTuning()
	orDefault(&t.WindowSize, d.WindowSize)
	orDefault(&t.KeepAliveInterval, d.KeepAliveInterval)
	orDefault(&t.WriteTimeout, d.WriteTimeout)
	orDefault(&t.AcceptBacklog, d.AcceptBacklog)
	orDefault(&t.HelloTimeout, d.HelloTimeout)
	orDefault(&t.OpenTimeout, d.OpenTimeout)
	orDefault(&t.DialTimeout, d.DialTimeout)
	orDefault(&t.BackoffMin, d.BackoffMin)
	orDefault(&t.BackoffMax, d.BackoffMax)
	orDefault(&t.MaxSessions, d.MaxSessions)
	orDefault(&t.ShutdownAbortWait, d.ShutdownAbortWait)
	orDefault(&t.MaxLabelsPerLink, d.MaxLabelsPerLink)
	orDefault(&t.MaxRoutes, d.MaxRoutes)
	orDefault(&t.MaxSessionsPerLink, d.MaxSessionsPerLink)
	orDefault(&t.MaxSessionsPerOrigin, d.MaxSessionsPerOrigin)
	orDefault(&t.MaxHellos, d.MaxHellos)
	orDefault(&t.MaxHellosPerSource, d.MaxHellosPerSource)
	orDefault(&t.RefusalLogBurst, d.RefusalLogBurst)
	orDefault(&t.HandshakeBurst, d.HandshakeBurst)
	orDefault(&t.ReconnectSpread, d.ReconnectSpread)
	orDefault(&t.MaxHandshakeRate, d.MaxHandshakeRate)
	return t
}

// orDefault sets *v to d when *v is zero.
func orDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// Validate reports every problem of t at once.
func (t Tuning) Validate() []error {
	var errs []error
	if t.WindowSize != 0 && t.WindowSize < 256<<10 {
		errs = append(errs, fmt.Errorf("window size %d is below yamux's minimum of 262144", t.WindowSize))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"keepalive interval", t.KeepAliveInterval},
		{"write timeout", t.WriteTimeout},
		{"stream close timeout", t.StreamCloseTimeout},
		{"hello timeout", t.HelloTimeout},
		{"open timeout", t.OpenTimeout},
		{"dial timeout", t.DialTimeout},
		{"idle timeout", t.IdleTimeout},
		{"peer write timeout", t.PeerWriteTimeout},
		{"backoff min", t.BackoffMin},
		{"backoff max", t.BackoffMax},
		{"reconnect spread", t.ReconnectSpread},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %s is negative", d.name, d.v))
		}
	}
	if t.BackoffMin > 0 && t.BackoffMax > 0 && t.BackoffMin > t.BackoffMax {
		errs = append(errs, fmt.Errorf("backoff min %s is above backoff max %s", t.BackoffMin, t.BackoffMax))
	}
	if t.AcceptBacklog < 0 || t.MaxSessions < 0 {
		errs = append(errs, fmt.Errorf("accept backlog and max sessions must not be negative"))
	}
	if t.MaxLabelsPerLink < 0 || t.MaxRoutes < 0 || t.MaxSessionsPerLink < 0 || t.MaxSessionsPerOrigin < 0 || t.MaxHellos < 0 || t.MaxHellosPerSource < 0 || t.RefusalLogBurst < 0 {
		errs = append(errs, fmt.Errorf("caps must not be negative"))
	}
	if t.MaxHandshakeRate < 0 || t.HandshakeBurst < 0 {
		errs = append(errs, fmt.Errorf("handshake rate and burst must not be negative"))
	}
	return errs
}

// yamuxConfig builds the yamux configuration of a link from t.
func (t Tuning) yamuxConfig(log yamux.Logger) *yamux.Config {
	return &yamux.Config{
		AcceptBacklog:          t.AcceptBacklog,
		EnableKeepAlive:        true,
		KeepAliveInterval:      t.KeepAliveInterval,
		ConnectionWriteTimeout: t.WriteTimeout,
		MaxStreamWindowSize:    t.WindowSize,
		// No yamux open timeout: it closes the whole link when one open is
		// not acknowledged in time; openOn bounds each open itself.
		StreamOpenTimeout:  0,
		StreamCloseTimeout: t.StreamCloseTimeout,
		Logger:             log,
		LogOutput:          nil,
	}
}
