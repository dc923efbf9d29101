package chain

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/relaychain/relaychain/internal/daemon"
	"github.com/relaychain/relaychain/mux"
)

// This file is the tuning section: its fields (Default sets them from
// mux.DefaultTuning), sizes written with a unit, its validation, and its
// conversion for the mux package.

// Tuning mirrors mux.Tuning in the configuration file. Every field has
// the default given in its comment; set both ends of a link alike.
type Tuning struct {
	// WindowSize is the per-session receive window: bytes ("8388608") or
	// with a unit ("8MiB", "512KiB"). Default 8MiB, at least 256KiB.
	WindowSize ByteSize `yaml:"window_size"`
	// KeepAliveInterval pings each link this often. Default 10s.
	KeepAliveInterval time.Duration `yaml:"keepalive_interval"`
	// WriteTimeout bounds a link write and the keepalive answer. Default
	// 10s. A link cut without a FIN is noticed within keepalive_interval +
	// write_timeout.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// StreamCloseTimeout, when set, resets a session stream closed at one
	// end whose other end does not close within it. Default 0: off (every
	// node closes its streams itself, and a dead link releases them all);
	// a value cuts the tail of a session whose reader drains slower.
	StreamCloseTimeout time.Duration `yaml:"stream_close_timeout"`
	// AcceptBacklog is how many session opens may wait on a link. Default 1024.
	AcceptBacklog int `yaml:"accept_backlog"`
	// HelloTimeout bounds the hello on a new link connection. Default 10s.
	HelloTimeout time.Duration `yaml:"hello_timeout"`
	// OpenTimeout bounds a session open on each hop. Default 15s.
	OpenTimeout time.Duration `yaml:"open_timeout"`
	// DialTimeout bounds the dial of a service address. Default 10s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// IdleTimeout aborts sessions idle this long. Default 0: never.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// PeerWriteTimeout aborts a session whose TCP peer (an entry's client,
	// a service's target) takes no byte for this long. Default 60s; 0:
	// never.
	PeerWriteTimeout time.Duration `yaml:"peer_write_timeout"`
	// ReconnectMin and ReconnectMax bound the backoff between attempts to
	// dial a link. Defaults 500ms and 30s.
	ReconnectMin time.Duration `yaml:"reconnect_min"`
	ReconnectMax time.Duration `yaml:"reconnect_max"`
	// MaxSessions caps concurrent sessions on this node. Default 50000.
	MaxSessions int `yaml:"max_sessions"`
	// MaxSessionsPerLink caps the sessions that arrive through one link.
	// Default 30000.
	MaxSessionsPerLink int `yaml:"max_sessions_per_link"`
	// MaxSessionsPerOrigin caps the sessions of one origin label on this
	// node. Default 20000.
	MaxSessionsPerOrigin int `yaml:"max_sessions_per_origin"`
	// MaxLabelsPerLink caps the labels one child may announce; more is
	// refused whole. Default 10000.
	MaxLabelsPerLink int `yaml:"max_labels_per_link"`
	// MaxRoutes caps the routing table. Default 100000.
	MaxRoutes int `yaml:"max_routes"`
	// MaxHellos caps the link connections in their handshake on one listen
	// address, MaxHellosPerSource those from one source address; beyond,
	// a connection is closed at once. Defaults 64 and 8.
	MaxHellos          int `yaml:"max_hellos"`
	MaxHellosPerSource int `yaml:"max_hellos_per_source"`
	// RefusalLogBurst is how many refused link connections are logged in
	// full per minute; the rest go in one summary line a minute. Default 10.
	RefusalLogBurst int `yaml:"refusal_log_burst"`

	// Reconnect storms (a node with many children restarting).

	// ReconnectSpread spreads the first reconnect of a dialled link that
	// was up: a random part of it is added to reconnect_min's first step,
	// so that the children of a node that restarts do not all come back
	// in the same second. Default 2s.
	ReconnectSpread time.Duration `yaml:"reconnect_spread"`
	// MaxHandshakeRate is how many new link connections per second one
	// listen address admits to their handshake, after a burst of
	// HandshakeBurst; the rest wait in the listen queue. Defaults 200 and
	// 64.
	MaxHandshakeRate float64 `yaml:"max_handshake_rate"`
	HandshakeBurst   int     `yaml:"handshake_burst"`

	// The status query of the tree (epproxy status --tree).

	// TreeTimeout bounds how long the root waits for the tree; each hop
	// gives its children three quarters of the time it was given. Default
	// 5s.
	TreeTimeout time.Duration `yaml:"tree_timeout"`
	// TreeAnswerMax caps a node's answer to a tree query: bytes or with a
	// unit. Default 1MiB.
	TreeAnswerMax ByteSize `yaml:"tree_answer_max"`
}

// ByteSize is a size in bytes, written as a number or with a unit
// (KiB, MiB, GiB, KB, MB, GB).
type ByteSize uint64

// UnmarshalYAML reads "8MiB" or 8388608. A value that is not a size is
// reported as a *yaml.TypeError, like any value of the wrong type, so that
// the loader names its line and key and goes on to report the file's other
// problems (any other error would abort the decode and lose both).
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		if v, err := ParseByteSize(n.Value); err == nil {
			*b = v
			return nil
		}
	}
	// The text yaml.v3 itself writes for a value of the wrong type.
	value := ""
	if n.Kind == yaml.ScalarNode && !strings.ContainsAny(n.Value, "`\r\n") {
		value = n.Value
		if len(value) > 10 {
			value = value[:7] + "..."
		}
		value = " `" + value + "`"
	}
	return &yaml.TypeError{Errors: []string{
		fmt.Sprintf("line %d: cannot unmarshal %s%s into chain.ByteSize", n.Line, n.ShortTag(), value),
	}}
}

// ParseByteSize parses "8MiB", "512KiB", "1GB", "4096".
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   uint64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"B", 1}}
	mult := uint64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			mult = u.mult
			t = strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
			break
		}
	}
	n, err := strconv.ParseUint(t, 10, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("size %q: want a whole number of bytes, optionally with a unit (KiB, MiB, GiB)", s)
	}
	if err != nil || n > (1<<63)/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return ByteSize(n * mult), nil
}

func (t Tuning) validate(ps *daemon.Problems) {
	if t.WindowSize < 256<<10 {
		ps.Errorf("tuning.window_size", "%d bytes is below the minimum of 256KiB", t.WindowSize)
	}
	if t.WindowSize > 1<<30 {
		ps.Errorf("tuning.window_size", "%d bytes is above the maximum of 1GiB", t.WindowSize)
	}
	positive := []struct {
		key string
		v   time.Duration
	}{
		{"keepalive_interval", t.KeepAliveInterval},
		{"write_timeout", t.WriteTimeout},
		{"hello_timeout", t.HelloTimeout},
		{"open_timeout", t.OpenTimeout},
		{"dial_timeout", t.DialTimeout},
		{"reconnect_min", t.ReconnectMin},
		{"reconnect_max", t.ReconnectMax},
	}
	for _, d := range positive {
		if d.v <= 0 {
			ps.Errorf("tuning."+d.key, "must be positive, like \"10s\"")
		}
	}
	if t.StreamCloseTimeout < 0 {
		ps.Errorf("tuning.stream_close_timeout", "must not be negative (0 turns it off)")
	}
	if t.IdleTimeout < 0 {
		ps.Errorf("tuning.idle_timeout", "must not be negative (0 turns it off)")
	}
	if t.PeerWriteTimeout < 0 {
		ps.Errorf("tuning.peer_write_timeout", "must not be negative (0 turns it off)")
	}
	if t.ReconnectMin > t.ReconnectMax {
		ps.Errorf("tuning.reconnect_min", "%s is above reconnect_max %s", t.ReconnectMin, t.ReconnectMax)
	}
	if t.DialTimeout > t.OpenTimeout && t.OpenTimeout > 0 {
		ps.Errorf("tuning.dial_timeout", "%s is above open_timeout %s: the entry would give up first", t.DialTimeout, t.OpenTimeout)
	}
	if t.AcceptBacklog <= 0 {
		ps.Errorf("tuning.accept_backlog", "must be positive")
	}
	for _, c := range []struct {
		key string
		v   int
	}{
		{"max_sessions", t.MaxSessions},
		{"max_sessions_per_link", t.MaxSessionsPerLink},
		{"max_sessions_per_origin", t.MaxSessionsPerOrigin},
		{"max_labels_per_link", t.MaxLabelsPerLink},
		{"max_routes", t.MaxRoutes},
		{"max_hellos", t.MaxHellos},
		{"max_hellos_per_source", t.MaxHellosPerSource},
		{"refusal_log_burst", t.RefusalLogBurst},
		{"handshake_burst", t.HandshakeBurst},
	} {
		if c.v <= 0 {
			ps.Errorf("tuning."+c.key, "must be positive")
		}
	}
	if t.ReconnectSpread <= 0 {
		ps.Errorf("tuning.reconnect_spread", "must be positive, like \"2s\"")
	}
	if !(t.MaxHandshakeRate > 0) {
		ps.Errorf("tuning.max_handshake_rate", "must be positive (new link connections a second)")
	}
	if t.TreeTimeout <= 0 {
		ps.Errorf("tuning.tree_timeout", "must be positive, like \"5s\"")
	}
	if t.TreeAnswerMax < 4<<10 || t.TreeAnswerMax > 64<<20 {
		ps.Errorf("tuning.tree_answer_max", "must be between 4KiB and 64MiB")
	}
}

// MuxTuning converts the tuning section for the mux package.
func (t Tuning) MuxTuning() mux.Tuning {
	m := mux.DefaultTuning()
	m.WindowSize = uint32(t.WindowSize)
	m.KeepAliveInterval = t.KeepAliveInterval
	m.WriteTimeout = t.WriteTimeout
	m.StreamCloseTimeout = t.StreamCloseTimeout
	m.AcceptBacklog = t.AcceptBacklog
	m.HelloTimeout = t.HelloTimeout
	m.OpenTimeout = t.OpenTimeout
	m.DialTimeout = t.DialTimeout
	m.IdleTimeout = t.IdleTimeout
	m.PeerWriteTimeout = t.PeerWriteTimeout // zero is off in both
	m.BackoffMin = t.ReconnectMin
	m.BackoffMax = t.ReconnectMax
	m.MaxSessions = t.MaxSessions
	m.MaxSessionsPerLink = t.MaxSessionsPerLink
	m.MaxSessionsPerOrigin = t.MaxSessionsPerOrigin
	m.MaxLabelsPerLink = t.MaxLabelsPerLink
	m.MaxRoutes = t.MaxRoutes
	m.MaxHellos = t.MaxHellos
	m.MaxHellosPerSource = t.MaxHellosPerSource
	m.RefusalLogBurst = t.RefusalLogBurst
	m.ReconnectSpread = t.ReconnectSpread
	m.MaxHandshakeRate = t.MaxHandshakeRate
	m.HandshakeBurst = t.HandshakeBurst
	m.TreeTimeout = t.TreeTimeout
	m.TreeAnswerMax = int(t.TreeAnswerMax)
	return m
}
