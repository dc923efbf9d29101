package mux

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/sirupsen/logrus"
)

// link is one established connection to a neighbour, multiplexed with
// yamux. It ends when its yamux session ends; then its routes go.
type link struct {
	n    *Node
	cfg  LinkConfig
	role Role // the peer's role
	conn net.Conn
	sess *yamux.Session
	log  *logrus.Entry

	ctrlMu sync.Mutex
	ctrl   net.Conn // the control stream, once open

	tellCh    chan struct{} // buffered 1: a TELL is wanted (peer is our parent)
	capLogged atomic.Bool   // an announcement over a cap was logged for this link

	// What changed below this node since the last message to this parent;
	// guarded by the routing table's lock (n.table.mu).
	pendAdd, pendDel map[string]struct{}
	pendFull         bool     // send the whole announcement (on connect)
	seq              uint32   // the last delta's sequence number
	path             []string // a parent's label and its path to the root, from its TELL reply; guarded by n.mu
	closeOnce        sync.Once

	lostMu   sync.Mutex
	lost     bool
	lostSeq  uint64
	onLostFn map[uint64]func() // called once when the link ends

	// The networks that changed below this node since the last message to
	// this parent; guarded by the routing table's lock, as pendAdd.
	pendNetAdd, pendNetDel map[NetAd]struct{}

	// retired: a reconfiguration removed the link; it takes no new session
	// and closes once its sessions are done or the grace ended (reconfig.go).
	retired atomic.Bool

	// Handing a node's place over to a successor (handover.go); the
	// flags are guarded by n.mu.
	cc           *coalesceConn // the connection under yamux, for its byte counts
	upSince      time.Time
	peerHandover bool          // the peer said HANDOVER: its successor's link may come up beside this one
	peerDrain    bool          // the peer said DRAIN: its successor's link takes this one's place
	superseded   bool          // a successor's link took this one's place; it finishes its sessions
	standby      bool          // a successor's link beside its predecessor's, no new sessions yet
	redial       chan struct{} // closed when the peer said DRAIN and this side dials: dial its successor
	redialed     bool
	drainReplied chan struct{} // closed when the peer answered this node's DRAIN
	replied      bool
	predecessor  *link        // a parent's predecessor's link, to answer once the parent took this node's TELL
	announced    atomic.Bool  // a child's link: its whole announcement arrived
	treeServing  atomic.Int32 // tree queries from this parent being answered (tree.go)
	originWaits  atomic.Int32 // sessions from this child waiting for their origin's announcement
}

func (l *link) close() {
	l.closeOnce.Do(func() {
		_ = l.sess.Close()
		_ = l.conn.Close()
	})
}

// acceptLinks accepts link connections on one listen address until the
// node stops accepting. Each connection's hello runs in its own goroutine.
func (n *Node) acceptLinks(ll *linkListener) {
	log := n.log.WithFields(logrus.Fields{"component": "link", "listen": ll.ln.Addr().String()})
	log.Info("listening for links")
	gate := func(conn net.Conn) bool {
		if ll.gate.enter(sourceOf(conn)) {
			return true
		}
		// Over the cap: closed at once, counted in the next summary.
		n.refusals.count(sourceOf(conn))
		return false
	}
	ungate := func(conn net.Conn) { ll.gate.leave(sourceOf(conn)) }
	n.awaitParentFirst(ll)
	paced := pacedListener{Listener: ll.ln, ctx: n.acceptCtx, bucket: newHandshakeBucket(func() (float64, int) {
		t := n.tuning()
		return t.MaxHandshakeRate, t.HandshakeBurst
	})}
	n.acceptLoop(paced, log, gate, ungate, func(conn net.Conn) { n.serveLinkConn(ll, conn) })
}

// acceptLoop accepts on ln until the node stops accepting and hands each
// connection to serve in a goroutine the node owns. No I/O happens here.
// An accept error other than a closed listener (too many open files, say)
// is logged and retried after a backoff: the node keeps serving.
//
// gate, when not nil, admits a connection before any goroutine is started
// for it; a connection it refuses is closed at once. ungate undoes gate for
// a connection that no goroutine was started for (the node is stopping).
func (n *Node) acceptLoop(ln net.Listener, log *logrus.Entry, gate func(net.Conn) bool, ungate func(net.Conn), serve func(net.Conn)) {
	b := Backoff{Min: 5 * time.Millisecond, Max: time.Second}
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || n.acceptCtx.Err() != nil {
				return
			}
			delay := b.Next()
			log.WithError(err).Errorf("accept failed; retrying in %s", delay)
			if !SleepCtx(n.acceptCtx, delay) {
				return
			}
			continue
		}
		b.Reset()
		if gate != nil && !gate(conn) {
			_ = conn.Close()
			continue
		}
		if !n.spawn(func() { serve(conn) }) {
			_ = conn.Close()
			if ungate != nil {
				ungate(conn)
			}
		}
	}
}

// serveLinkConn runs the listening side of a link: hello, then the link
// until it ends. It closes conn.
func (n *Node) serveLinkConn(ll *linkListener, conn net.Conn) {
	defer func() {
		if r := recover(); r != nil {
			n.log.WithField("component", "link").Errorf("panic serving link from %s: %v\n%s", conn.RemoteAddr(), r, stack())
			_ = conn.Close()
		}
	}()
	log := n.log.WithFields(logrus.Fields{"component": "link", "addr": conn.RemoteAddr().String()})
	source := sourceOf(conn)
	var leaveOnce sync.Once
	leave := func() { leaveOnce.Do(func() { ll.gate.leave(source) }) }
	defer leave()
	_, _ = n.establish(conn, false, func(res *reservation) (net.Conn, LinkConfig, hello, error) {
		defer leave()
		c, auth, isTLS, err := n.acceptTLS(ll, conn, log)
		if err != nil {
			// Nothing was sent: the peer sees the connection close (or a
			// TLS alert), the reason is for this node's log only. A hello
			// cut by shutdown is no refusal.
			if n.acceptCtx.Err() == nil {
				n.refusals.note(source, log.WithError(err), "link connection refused")
				n.noteLinkErr("", "link connection from "+conn.RemoteAddr().String()+" refused: "+err.Error())
			}
			return nil, LinkConfig{}, hello{}, err
		}
		var authp *LinkConfig
		if isTLS {
			authp = &auth
		}
		lc, peer, err := n.helloListen(ll, c, authp, res)
		return c, lc, peer, err
	})
}

// establish runs the TLS handshake and the hello on conn (hs: the dialling
// or the listening side), all under the hello timeout, and then the link
// until it ends, on the connection hs returned. The peer's label, reserved
// by the hello, is released here and only here. Shutdown does not wait for
// a hello: a silent peer would hold it for the whole hello timeout. It
// closes conn and returns the handshake's error, and whether the link
// returned early for its peer's successor to be dialled (runLink).
func (n *Node) establish(conn net.Conn, dialled bool, hs func(*reservation) (net.Conn, LinkConfig, hello, error)) (redial bool, err error) {
	res := &reservation{n: n}
	defer res.release()
	_ = conn.SetDeadline(time.Now().Add(n.tuning().HelloTimeout))
	stop := context.AfterFunc(n.acceptCtx, func() { _ = conn.SetDeadline(time.Now()) })
	c, lc, peer, err := hs(res)
	if !stop() && err == nil {
		err = ErrShutdown
	}
	if err != nil {
		_ = conn.Close()
		return false, err
	}
	_ = conn.SetDeadline(time.Time{})
	return n.runLink(lc, peer, c, dialled, res), nil
}

// dialLoop keeps the dialled link to lc.Peer up: it dials, runs the link
// until it ends, and dials again after a backoff, until ctx ends (the node
// stops accepting, or a reconfiguration removed the link).
func (n *Node) dialLoop(ctx context.Context, lc LinkConfig) {
	log := n.log.WithFields(logrus.Fields{"component": "link", "l": lc.Peer, "addr": lc.Dial})
	b := Backoff{Min: n.tuning().BackoffMin, Max: n.tuning().BackoffMax}
	for ctx.Err() == nil {
		d := sourceDialer(lc.Source, n.tuning().HelloTimeout)
		conn, err := dialFrom(d, func(d net.Dialer) (net.Conn, error) { return d.DialContext(ctx, "tcp", lc.Dial) }, lc.Source)
		redial := false
		if err == nil {
			redial, err = n.establish(conn, true, func(res *reservation) (net.Conn, LinkConfig, hello, error) {
				c := conn
				if !lc.Plaintext {
					var err error
					if c, err = n.dialTLS(lc, conn); err != nil {
						log.WithError(err).Error("handshake failed")
						return nil, lc, hello{}, err
					}
				}
				peer, err := n.helloDial(lc, c, res)
				if err == nil {
					b.Reset()
				}
				return c, lc, peer, err
			})
		}
		if ctx.Err() != nil {
			return
		}
		wait := b.Next()
		if err == nil && !(redial && !lc.Parent) {
			// The link was up: its peer may have restarted with many
			// other children, which must not all come back at once. A
			// parent dials a child's successor at once: the successor
			// holds its own children until a parent link is up.
			wait += Jitter(n.tuning().ReconnectSpread)
		}
		switch {
		case err != nil:
			log.WithError(err).Warnf("link not up; retrying in %s", wait.Round(time.Millisecond))
			n.noteLinkErr(lc.Peer, "link not up: "+err.Error())
		case redial:
			log.Infof("peer hands its place over; dialling its successor in %s", wait.Round(time.Millisecond))
		default:
			log.Infof("reconnecting in %s", wait.Round(time.Millisecond))
		}
		if !SleepCtx(ctx, wait) {
			return
		}
	}
}

// runLink runs an established link until its yamux session ends, then
// removes its routes. The peer's label is reserved in res on entry; the
// link takes it over once registered. It closes conn.
//
// It reports true when it returned before the link ended, for the dial
// loop to dial the peer's successor (the peer is handing over).
func (n *Node) runLink(lc LinkConfig, peer hello, conn net.Conn, dialled bool, res *reservation) bool {
	l := &link{
		n:      n,
		cfg:    lc,
		role:   peer.Role,
		conn:   conn,
		log:    n.log.WithFields(logrus.Fields{"component": "routing", "l": lc.Peer}),
		tellCh: make(chan struct{}, 1),

		upSince:      time.Now(),
		redial:       make(chan struct{}),
		drainReplied: make(chan struct{}),
	}
	linkLog := n.log.WithFields(logrus.Fields{"component": "link", "l": lc.Peer, "addr": conn.RemoteAddr().String()})
	ycfg := n.tuning().yamuxConfig(yamuxLogger{n.log.WithFields(logrus.Fields{"component": "yamux", "l": lc.Peer})})
	var err error
	cc := newCoalesceConn(conn)
	l.cc = cc
	if dialled {
		l.sess, err = yamux.Client(cc, ycfg)
	} else {
		l.sess, err = yamux.Server(cc, ycfg)
	}
	if err != nil {
		_ = conn.Close()
		linkLog.WithError(err).Error("link setup failed")
		n.noteLinkErr(lc.Peer, "link setup failed: "+err.Error())
		return false
	}
	n.mu.Lock()
	res.takeLocked()
	if n.dead || !n.configuredLocked(lc) {
		n.mu.Unlock()
		l.close()
		return false
	}
	replaced, standby := n.registerLocked(l)
	if st := n.linkStates[lc.Peer]; st != nil && !standby {
		*st = linkState{since: time.Now(), remote: conn.RemoteAddr().String(), conn: cc}
	}
	if lc.Parent && !standby {
		n.table.addParent(l)
	}
	n.mu.Unlock()
	side := "child"
	if lc.Parent {
		side = "parent"
	}
	linkLog.WithFields(logrus.Fields{"side": side, "role": peer.Role.String()}).Info("link up")
	if lc.Plaintext {
		linkLog.Warn("link up without TLS (insecure_plaintext): not authenticated, not encrypted")
	}
	if lc.Parent && !standby && replaced == nil {
		// A successor's link in place of its predecessor's is no new
		// parent: the choice stays, and so does the path to the root
		// until the successor's TELL reply.
		n.parentEvent(func(ps *parentSet, now time.Time, _ *parentNews) { ps.up(lc.Peer, now) })
	}
	n.noteSuccessorLink(l, replaced, standby)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		n.acceptStreams(l)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.notifyLoop()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		n.pingLoop(l)
	}()
	if !lc.Parent {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.controlAsParent()
		}()
	}
	if l.cfg.Dial != "" && l.awaitEndOrRedial() && n.spawn(func() { n.endLink(l, &wg, linkLog) }) {
		// The peer hands its place over to a successor: the dial loop
		// dials it now, while this link finishes its sessions.
		return true
	}
	n.endLink(l, &wg, linkLog)
	return false
}

// acceptStreams hands every stream the peer opens to its own goroutine.
func (n *Node) acceptStreams(l *link) {
	for {
		st, err := l.sess.AcceptStream()
		if err != nil {
			if l.sess.IsClosed() {
				return
			}
			// A stream whose acknowledgement could not be sent in time:
			// that stream is lost, the link goes on.
			l.log.WithError(err).Warn("accepting a stream failed")
			continue
		}
		if !n.spawn(func() { n.serveStream(l, st) }) {
			_ = st.Close()
		}
	}
}

// serveStream reads a stream's type under the open timeout and serves it:
// the control stream (opened by the parent) or a routed session.
func (n *Node) serveStream(l *link, st *yamux.Stream) {
	defer func() {
		if r := recover(); r != nil {
			n.log.WithField("component", "session").Errorf("panic serving a stream from %s: %v\n%s", l.cfg.Peer, r, stack())
			_ = st.SetDeadline(time.Now())
			_ = st.Close()
		}
	}()
	_ = st.SetReadDeadline(time.Now().Add(n.tuning().OpenTimeout))
	var typ [1]byte
	if _, err := io.ReadFull(st, typ[:]); err != nil {
		_ = st.Close()
		return
	}
	switch {
	case typ[0] == streamSession:
		n.forward(l, st)
	case typ[0] == streamControl && l.cfg.Parent:
		_ = st.SetReadDeadline(time.Time{})
		l.controlAsChild(st)
	case typ[0] == streamTree:
		n.serveTree(l, st)
	default:
		n.log.WithFields(logrus.Fields{"component": "link", "l": l.cfg.Peer}).Errorf("unexpected stream type %#x; closing the link", typ[0])
		l.close()
	}
}
