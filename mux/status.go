package mux

import (
	"sort"
	"sync"
	"time"
)

// This file holds the node's status snapshot: what an operator asks a
// running node (its links, routes, sessions, refusals and recent errors).

// NodeStatus is a snapshot of a node, for an operator. It is plain data:
// it encodes to JSON as it is.
type NodeStatus struct {
	Label      string        `json:"label"`
	Role       string        `json:"role"`
	Version    string        `json:"version,omitempty"`
	Started    time.Time     `json:"started"`
	Uptime     time.Duration `json:"uptime_ns"`
	Links      []LinkStatus  `json:"links"`
	Routes     int           `json:"routes"`
	PathToRoot []string      `json:"path_to_root"`
	Sessions   int           `json:"sessions"`
	Stats      Stats         `json:"refusals"`
	Hellos     int           `json:"hellos_in_progress"`
	Errors     []ErrorRecord `json:"recent_errors"`

	// Sessions that ended on this node since it started, by outcome
	// (OutcomeClosed, OutcomeAborted, or the refusing status's name).
	Ended map[string]uint64 `json:"sessions_ended"`

	// Served networks (PROTOCOL.md section 3): how many this node knows,
	// its own and those announced below it, and its own.
	Networks int      `json:"networks"`
	Serves   []string `json:"serves,omitempty"`

	// Parent selection (parents.go), on a node with parents.

	ParentSelection string `json:"parent_selection,omitempty"` // ordered, nearest or spread
	ActiveParent    string `json:"active_parent,omitempty"`    // the parent chosen for new sessions (spread: the first of them)
}

// LinkStatus is one configured link in a NodeStatus. A link configured
// but down is there too, with its last error.
type LinkStatus struct {
	Peer     string        `json:"peer"`
	Side     string        `json:"side"` // "parent" or "child"
	Up       bool          `json:"up"`
	Since    time.Time     `json:"since"` // when it last came up or went down; zero: never up
	Dialled  bool          `json:"dialled"`
	Addr     string        `json:"addr"`             // the address dialled or listened on
	Remote   string        `json:"remote,omitempty"` // the peer's address while up
	RTT      time.Duration `json:"rtt_ns,omitempty"` // the last keepalive ping's round trip, while up
	BytesIn  uint64        `json:"bytes_in"`         // read on the link's connection (this one, while up; else the last)
	BytesOut uint64        `json:"bytes_out"`        // written on it
	Sessions int           `json:"sessions"`         // sessions that arrived through it
	LastErr  string        `json:"last_error,omitempty"`

	// Parent selection (parents.go), for a parent link.

	Suppressed bool    `json:"suppressed,omitempty"`      // held down for flapping
	Penalty    float64 `json:"damping_penalty,omitempty"` // its damping penalty now
}

// ErrorRecord is one error the node logged about a link.
type ErrorRecord struct {
	Time time.Time `json:"time"`
	Peer string    `json:"peer,omitempty"`
	Msg  string    `json:"msg"`
}

// errorRingLen is how many recent errors a node keeps for its status.
const errorRingLen = 16

// errorRing keeps the last errorRingLen errors, oldest first.
type errorRing struct {
	mu   sync.Mutex
	recs []ErrorRecord
}

func (r *errorRing) add(peer, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.recs) == errorRingLen {
		copy(r.recs, r.recs[1:])
		r.recs = r.recs[:errorRingLen-1]
	}
	r.recs = append(r.recs, ErrorRecord{Time: time.Now(), Peer: peer, Msg: msg})
}

func (r *errorRing) snapshot() []ErrorRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]ErrorRecord{}, r.recs...)
}

// linkState is what the node keeps of a configured link between its ups
// and downs; guarded by n.mu.
type linkState struct {
	since   time.Time
	remote  string
	lastErr string
	conn    *coalesceConn // the last connection, for its byte counts
	rtt     time.Duration
}

// noteLinkErr records err as the last error of the link to peer ("": not
// known which) and in the recent errors.
func (n *Node) noteLinkErr(peer, msg string) {
	n.errs.add(peer, msg)
	if peer == "" {
		return
	}
	n.mu.Lock()
	if st := n.linkStates[peer]; st != nil {
		st.lastErr = msg
	}
	n.mu.Unlock()
}

// Status returns a snapshot of the node.
func (n *Node) Status() NodeStatus {
	now := time.Now()
	s := NodeStatus{
		Label:   n.cfg.Label,
		Role:    n.cfg.Role.String(),
		Version: n.cfg.Version,
		Started: n.started,
		Uptime:  now.Sub(n.started),
		Routes:  n.table.size(),
		Stats:   n.Stats(),
		Errors:  n.errs.snapshot(),
		Ended:   n.outcomes.snapshot(),

		Networks: n.table.netCount(),
	}
	for _, nw := range n.serves {
		s.Serves = append(s.Serves, nw.String())
	}
	n.lnMu.Lock()
	for _, ll := range n.listeners {
		s.Hellos += ll.gate.inProgress()
	}
	n.lnMu.Unlock()
	n.mu.Lock()
	s.PathToRoot = append([]string{}, n.path...)
	s.Sessions = len(n.sessions)
	for _, lc := range n.cfg.Links {
		ls := LinkStatus{Peer: lc.Peer, Side: "child", Dialled: lc.Dial != "", Addr: lc.Dial,
			Sessions: n.perLink[lc.Peer]}
		if lc.Parent {
			ls.Side = "parent"
		}
		if !ls.Dialled {
			ls.Addr = lc.Listen
			if a := n.LinkAddr(lc.Peer); a != nil {
				ls.Addr = a.String()
			}
		}
		if st := n.linkStates[lc.Peer]; st != nil {
			ls.Since, ls.LastErr = st.since, st.lastErr
			if st.conn != nil {
				ls.BytesIn, ls.BytesOut = st.conn.in.Load(), st.conn.out.Load()
			}
			if _, up := n.links[lc.Peer]; up {
				ls.Up, ls.Remote, ls.RTT = true, st.remote, st.rtt
			}
		}
		s.Links = append(s.Links, ls)
	}
	n.parents.status(&s, now)
	n.mu.Unlock()
	sort.SliceStable(s.Links, func(i, j int) bool { return s.Links[i].Peer < s.Links[j].Peer })
	return s
}

// pingLoop measures the link's round trip at once and every keepalive
// interval (a parent's probe interval, when shorter), until the link
// ends. A parent's round trips and unanswered pings go to the parent set.
func (n *Node) pingLoop(l *link) {
	t := time.NewTicker(n.probeInterval(l))
	defer t.Stop()
	for {
		rtt, err := l.sess.Ping()
		if err == nil {
			n.mu.Lock()
			if st := n.linkStates[l.cfg.Peer]; st != nil {
				st.rtt = rtt
			}
			n.mu.Unlock()
		}
		if l.cfg.Parent && !l.sess.IsClosed() {
			n.notePing(l, rtt, err)
		}
		select {
		case <-t.C:
		case <-l.sess.CloseChan():
			return
		}
	}
}
