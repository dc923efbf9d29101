package mux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sort"
	"sync"
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
	path      []string      // a parent's label and its path to the root, from its TELL reply; guarded by n.mu
	closeOnce sync.Once

	lostMu   sync.Mutex
	lost     bool
	lostSeq  uint64
	onLostFn map[uint64]func() // called once when the link ends
}

// onLost registers f to run when the link ends (at once if it has ended)
// and returns the function that unregisters it. The ends of sessions use
// it to learn of a dead link even while both their directions wait on
// their TCP peer, without a goroutine per session.
func (l *link) onLost(f func()) (cancel func()) {
	l.lostMu.Lock()
	if l.lost {
		l.lostMu.Unlock()
		f()
		return func() {}
	}
	l.lostSeq++
	id := l.lostSeq
	if l.onLostFn == nil {
		l.onLostFn = map[uint64]func(){}
	}
	l.onLostFn[id] = f
	l.lostMu.Unlock()
	return func() {
		l.lostMu.Lock()
		delete(l.onLostFn, id)
		l.lostMu.Unlock()
	}
}

// fireLost runs the onLost functions once.
func (l *link) fireLost() {
	l.lostMu.Lock()
	l.lost = true
	fns := l.onLostFn
	l.onLostFn = nil
	l.lostMu.Unlock()
	for _, f := range fns {
		f()
	}
}

func (l *link) close() {
	l.closeOnce.Do(func() {
		_ = l.sess.Close()
		_ = l.conn.Close()
	})
}

// wantTell asks the link's tell loop to send a TELL; a request already
// pending covers this one.
func (l *link) wantTell() {
	select {
	case l.tellCh <- struct{}{}:
	default:
	}
}

// send writes a control message under the link's write timeout.
func (l *link) send(m ctrlMsg) error {
	return l.sendBuilt(func() ctrlMsg { return m })
}

// sendBuilt builds a control message and writes it, both under the
// control stream's lock, so that messages that replace what the neighbour
// knows (WHO reply, TELL, TELL reply) go out in the order their contents
// were taken: a newer TELL is never overtaken by an older reply.
func (l *link) sendBuilt(build func() ctrlMsg) error {
	l.ctrlMu.Lock()
	defer l.ctrlMu.Unlock()
	m := build()
	if l.ctrl == nil {
		// Not open yet: the TELL sent when it opens carries the news.
		return nil
	}
	_ = l.ctrl.SetWriteDeadline(time.Now().Add(l.n.tun.WriteTimeout))
	_, err := l.ctrl.Write(m.encode())
	_ = l.ctrl.SetWriteDeadline(time.Time{})
	if err == nil {
		l.log.WithField("labels", joinLabels(m.Labels)).Debugf("%s command sent", m.Type)
	}
	return err
}

// acceptLinks accepts link connections on one listen address until the
// node stops accepting. Each connection's hello runs in its own goroutine.
func (n *Node) acceptLinks(ll *linkListener) {
	log := n.log.WithFields(logrus.Fields{"component": "link", "listen": ll.ln.Addr().String()})
	log.Info("listening for links")
	n.acceptLoop(ll.ln, log, func(conn net.Conn) { n.serveLinkConn(ll, conn) })
}

// acceptLoop accepts on ln until the node stops accepting and hands each
// connection to serve in a goroutine the node owns. No I/O happens here.
// An accept error other than a closed listener (too many open files, say)
// is logged and retried after a backoff: the node keeps serving.
func (n *Node) acceptLoop(ln net.Listener, log *logrus.Entry, serve func(net.Conn)) {
	var delay time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || n.acceptCtx.Err() != nil {
				return
			}
			delay = acceptBackoff(delay)
			log.WithError(err).Errorf("accept failed; retrying in %s", delay)
			if !sleepCtx(n.acceptCtx, delay) {
				return
			}
			continue
		}
		delay = 0
		if !n.spawn(func() { serve(conn) }) {
			_ = conn.Close()
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
	// Shutdown does not wait for a hello: a silent peer would hold it for
	// the whole hello timeout.
	stop := context.AfterFunc(n.acceptCtx, func() { _ = conn.SetDeadline(time.Now()) })
	lc, peer, err := n.helloListen(ll, conn)
	if !stop() && err == nil {
		n.unreserve(peer.Label)
		err = ErrShutdown
	}
	if err != nil {
		_ = conn.Close()
		return
	}
	n.runLink(lc, peer, conn, false)
}

// dialLoop keeps the dialled link to lc.Peer up: it dials, runs the link
// until it ends, and dials again after a backoff, until the node stops
// accepting.
func (n *Node) dialLoop(lc LinkConfig) {
	log := n.log.WithFields(logrus.Fields{"component": "link", "l": lc.Peer, "addr": lc.Dial})
	b := backoff{min: n.tun.BackoffMin, max: n.tun.BackoffMax}
	for n.acceptCtx.Err() == nil {
		d := net.Dialer{Timeout: n.tun.HelloTimeout}
		conn, err := d.DialContext(n.acceptCtx, "tcp", lc.Dial)
		if err == nil {
			var peer hello
			stop := context.AfterFunc(n.acceptCtx, func() { _ = conn.SetDeadline(time.Now()) })
			peer, err = n.helloDial(lc, conn)
			if !stop() && err == nil {
				n.unreserve(peer.Label)
				err = ErrShutdown
			}
			if err == nil {
				b.reset()
				n.runLink(lc, peer, conn, true)
			} else {
				_ = conn.Close()
			}
		}
		if n.acceptCtx.Err() != nil {
			return
		}
		wait := b.next()
		if err != nil {
			log.WithError(err).Warnf("link not up; retrying in %s", wait.Round(time.Millisecond))
		} else {
			log.Infof("reconnecting in %s", wait.Round(time.Millisecond))
		}
		if !sleepCtx(n.acceptCtx, wait) {
			return
		}
	}
}

// myHello is this node's hello on the link lc.
func (n *Node) myHello(lc LinkConfig, known bool) hello {
	return hello{Version: ProtoVersion, Role: n.cfg.Role, Parent: known && !lc.Parent, Label: n.cfg.Label}
}

// checkPeer decides whether the peer's hello fits the link lc, and
// reserves the peer's label when it does.
func (n *Node) checkPeer(lc LinkConfig, h hello) error {
	if h.Version != ProtoVersion {
		return fmt.Errorf("%w: peer %s speaks protocol version %d, this node speaks %d", ErrVersion, h.Label, h.Version, ProtoVersion)
	}
	if h.Label != lc.Peer {
		return fmt.Errorf("%w: expected %s, peer says it is %s", ErrRejected, lc.Peer, h.Label)
	}
	if lc.Parent {
		if !h.Parent {
			return fmt.Errorf("%w: %s is configured as this node's parent but does not take it as a child", ErrRejected, h.Label)
		}
		if h.Role != RoleRoot && h.Role != RoleRelay && h.Role != RoleLeaf {
			// A leaf may be a parent: a gwproxy serves the eventsinks beside it.
			return fmt.Errorf("%w: %s is configured as this node's parent but has unknown role %s", ErrRejected, h.Label, h.Role)
		}
	} else {
		if h.Parent {
			return fmt.Errorf("%w: %s is configured as this node's child but takes this node as its child", ErrRejected, h.Label)
		}
		if h.Role != RoleRelay && h.Role != RoleLeaf {
			return fmt.Errorf("%w: %s is configured as this node's child but is a %s", ErrRejected, h.Label, h.Role)
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.links[h.Label] != nil || n.reserved[h.Label] {
		return fmt.Errorf("%w: duplicate label: %s is already connected", ErrRejected, h.Label)
	}
	n.reserved[h.Label] = true
	return nil
}

func (n *Node) unreserve(label string) {
	n.mu.Lock()
	delete(n.reserved, label)
	n.mu.Unlock()
}

// helloDial runs the hello on a dialled connection: send ours, read the
// peer's hello and verdict, send our verdict. See PROTOCOL.md.
func (n *Node) helloDial(lc LinkConfig, conn net.Conn) (hello, error) {
	log := n.log.WithFields(logrus.Fields{"component": "link", "l": lc.Peer, "addr": conn.RemoteAddr().String()})
	_ = conn.SetDeadline(time.Now().Add(n.tun.HelloTimeout))
	fail := func(err error) (hello, error) {
		log.WithError(err).Error("handshake failed")
		return hello{}, err
	}
	if _, err := conn.Write(n.myHello(lc, true).encode()); err != nil {
		return fail(fmt.Errorf("send hello: %w", err))
	}
	peer, err := readHello(conn)
	if err != nil {
		return fail(err)
	}
	ok, reason, err := readVerdict(conn)
	if err != nil {
		return fail(err)
	}
	if !ok {
		return fail(fmt.Errorf("%w %s: %s", ErrRefusedByPeer, peer.Label, reason))
	}
	if err := n.checkPeer(lc, peer); err != nil {
		_, _ = conn.Write(encodeVerdict(err.Error(), false))
		return fail(err)
	}
	if _, err := conn.Write(encodeVerdict("", true)); err != nil {
		n.unreserve(peer.Label)
		return fail(fmt.Errorf("send verdict: %w", err))
	}
	_ = conn.SetDeadline(time.Time{})
	return peer, nil
}

// helloListen runs the hello on an accepted connection: read the peer's
// hello, pick its link by label, send our hello and verdict, read the
// peer's verdict.
func (n *Node) helloListen(ll *linkListener, conn net.Conn) (LinkConfig, hello, error) {
	log := n.log.WithFields(logrus.Fields{"component": "link", "addr": conn.RemoteAddr().String()})
	_ = conn.SetDeadline(time.Now().Add(n.tun.HelloTimeout))
	fail := func(err error) (LinkConfig, hello, error) {
		log.WithError(err).Error("handshake failed")
		return LinkConfig{}, hello{}, err
	}
	refuse := func(lc LinkConfig, known bool, err error) (LinkConfig, hello, error) {
		msg := append(n.myHello(lc, known).encode(), encodeVerdict(err.Error(), false)...)
		_, _ = conn.Write(msg)
		return fail(err)
	}
	peer, err := readHello(conn)
	if err != nil {
		return refuse(LinkConfig{}, false, err)
	}
	log = log.WithField("l", peer.Label)
	lc, known := ll.links[peer.Label]
	if !known {
		want := make([]string, 0, len(ll.links))
		for p := range ll.links {
			want = append(want, p)
		}
		sort.Strings(want)
		return refuse(lc, false, fmt.Errorf("%w: unexpected label %s on this port (expected %s)", ErrRejected, peer.Label, joinLabels(want)))
	}
	if err := n.checkPeer(lc, peer); err != nil {
		return refuse(lc, true, err)
	}
	msg := append(n.myHello(lc, true).encode(), encodeVerdict("", true)...)
	if _, err := conn.Write(msg); err != nil {
		n.unreserve(peer.Label)
		return fail(fmt.Errorf("send hello: %w", err))
	}
	ok, reason, err := readVerdict(conn)
	if err != nil {
		n.unreserve(peer.Label)
		return fail(err)
	}
	if !ok {
		n.unreserve(peer.Label)
		return fail(fmt.Errorf("%w %s: %s", ErrRefusedByPeer, peer.Label, reason))
	}
	_ = conn.SetDeadline(time.Time{})
	return lc, peer, nil
}

// runLink runs an established link until its yamux session ends, then
// removes its routes. The peer's label is reserved on entry. It closes conn.
func (n *Node) runLink(lc LinkConfig, peer hello, conn net.Conn, dialled bool) {
	l := &link{
		n:      n,
		cfg:    lc,
		role:   peer.Role,
		conn:   conn,
		log:    n.log.WithFields(logrus.Fields{"component": "routing", "l": lc.Peer}),
		tellCh: make(chan struct{}, 1),
	}
	linkLog := n.log.WithFields(logrus.Fields{"component": "link", "l": lc.Peer, "addr": conn.RemoteAddr().String()})
	ycfg := n.tun.yamuxConfig(yamuxLogger{n.log.WithFields(logrus.Fields{"component": "yamux", "l": lc.Peer})})
	var err error
	if dialled {
		l.sess, err = yamux.Client(&coalesceConn{Conn: conn}, ycfg)
	} else {
		l.sess, err = yamux.Server(&coalesceConn{Conn: conn}, ycfg)
	}
	if err != nil {
		n.unreserve(lc.Peer)
		_ = conn.Close()
		linkLog.WithError(err).Error("link setup failed")
		return
	}
	n.mu.Lock()
	delete(n.reserved, lc.Peer)
	if n.dead {
		n.mu.Unlock()
		l.close()
		return
	}
	n.links[lc.Peer] = l
	var parentNow string
	if lc.Parent {
		if p := n.activeParentLocked(); p != nil {
			parentNow = p.cfg.Peer
		}
	}
	n.mu.Unlock()
	side := "child"
	if lc.Parent {
		side = "parent"
	}
	linkLog.WithFields(logrus.Fields{"side": side, "role": peer.Role.String()}).Info("link up")
	if parentNow == lc.Peer {
		l.log.Infof("active parent is now %s", parentNow)
	}

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
	if !lc.Parent {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.controlAsParent()
		}()
	}
	<-l.sess.CloseChan()
	l.close()
	l.fireLost()
	wg.Wait()

	n.mu.Lock()
	delete(n.links, lc.Peer)
	_, hadRoutes := n.below[lc.Peer]
	delete(n.below, lc.Peer)
	changed := hadRoutes && n.recomputeLocked()
	if !lc.Parent {
		// nothing more
	} else if p := n.activeParentLocked(); p != nil {
		parentNow = p.cfg.Peer
	} else {
		parentNow = ""
	}
	n.mu.Unlock()
	if lc.Parent {
		n.refreshPath()
	}
	linkLog.Warn("link down")
	if lc.Parent {
		if parentNow != "" {
			l.log.Infof("active parent is now %s", parentNow)
		} else {
			l.log.Warn("no parent link is up")
		}
	}
	if changed {
		n.tellParents()
	}
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
	_ = st.SetReadDeadline(time.Now().Add(n.tun.OpenTimeout))
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
	default:
		n.log.WithFields(logrus.Fields{"component": "link", "l": l.cfg.Peer}).Errorf("unexpected stream type %#x; closing the link", typ[0])
		l.close()
	}
}

// controlAsParent opens the control stream, sends WHO, and answers the
// child's TELLs until the link ends.
func (l *link) controlAsParent() {
	st, err := l.sess.OpenStream()
	if err != nil {
		return
	}
	defer st.Close()
	l.ctrlMu.Lock()
	l.ctrl = st
	_ = st.SetWriteDeadline(time.Now().Add(l.n.tun.WriteTimeout))
	_, err = st.Write([]byte{streamControl})
	_ = st.SetWriteDeadline(time.Time{})
	l.ctrlMu.Unlock()
	if err != nil {
		return
	}
	if err := l.send(ctrlMsg{Type: ctrlWho}); err != nil {
		return
	}
	for {
		m, err := readCtrl(st)
		if err != nil {
			l.controlEnded(err)
			return
		}
		l.log.WithField("labels", joinLabels(m.Labels)).Infof("%s command received", m.Type)
		switch m.Type {
		case ctrlWhoReply, ctrlTell:
			if len(m.Labels) == 0 || m.Labels[0] != l.cfg.Peer {
				l.protocolError(fmt.Errorf("%s must start with the sender's label %s", m.Type, l.cfg.Peer))
				return
			}
			l.n.setBelow(l.cfg.Peer, m.Labels)
			if m.Type == ctrlTell {
				if err := l.sendBuilt(l.n.tellReply); err != nil {
					return
				}
			}
		default:
			l.protocolError(fmt.Errorf("a parent does not expect %s", m.Type))
			return
		}
	}
}

// controlAsChild serves the control stream the parent opened: it answers
// WHO, and takes the parent's TELL reply as this node's path to the root.
func (l *link) controlAsChild(st *yamux.Stream) {
	l.ctrlMu.Lock()
	if l.ctrl != nil {
		l.ctrlMu.Unlock()
		l.protocolError(errors.New("a second control stream"))
		return
	}
	l.ctrl = st
	l.ctrlMu.Unlock()
	defer st.Close()
	l.wantTell() // the TELL on connect
	for {
		m, err := readCtrl(st)
		if err != nil {
			l.controlEnded(err)
			return
		}
		l.log.WithField("labels", joinLabels(m.Labels)).Infof("%s command received", m.Type)
		switch m.Type {
		case ctrlWho:
			if err := l.sendBuilt(func() ctrlMsg {
				return ctrlMsg{Type: ctrlWhoReply, Labels: l.n.tellLabels()}
			}); err != nil {
				return
			}
		case ctrlTellReply:
			if m.Labels[0] != l.cfg.Peer {
				l.protocolError(fmt.Errorf("TELL reply must start with the sender's label %s", l.cfg.Peer))
				return
			}
			if contains(m.Labels, l.n.cfg.Label) || len(m.Labels) > defaultHops {
				l.log.WithField("path", joinLabels(m.Labels)).Error("path to the root loops through this node or is too long: the configuration has a cycle; path ignored")
				continue
			}
			l.n.mu.Lock()
			l.path = m.Labels
			l.n.mu.Unlock()
			l.n.refreshPath()
		default:
			l.protocolError(fmt.Errorf("a child does not expect %s", m.Type))
			return
		}
	}
}

// notifyLoop tells the neighbour what changed whenever asked, once the
// control stream is there: a TELL to a parent (the labels below this node),
// an unsolicited TELL reply to a child (this node's path to the root).
func (l *link) notifyLoop() {
	for {
		select {
		case <-l.sess.CloseChan():
			return
		case <-l.tellCh:
		}
		build := func() ctrlMsg { return ctrlMsg{Type: ctrlTell, Labels: l.n.tellLabels()} }
		if !l.cfg.Parent {
			build = l.n.tellReply
		}
		if err := l.sendBuilt(build); err != nil {
			l.log.WithError(err).Warn("control message not sent; closing the link")
			l.close()
			return
		}
	}
}

func (l *link) controlEnded(err error) {
	if errors.Is(err, io.EOF) || errors.Is(err, yamux.ErrSessionShutdown) || l.sess.IsClosed() {
		l.close()
		return
	}
	l.protocolError(err)
}

func (l *link) protocolError(err error) {
	l.log.WithError(err).Error("control protocol error; closing the link")
	l.close()
}

// backoff is an exponential backoff with jitter between min and max.
type backoff struct {
	min, max time.Duration
	cur      time.Duration
}

func (b *backoff) reset() { b.cur = 0 }

// next returns the wait before the next attempt: the current step halved
// plus a random part of the other half, the step doubling up to max.
func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur *= 2
	}
	if b.cur > b.max {
		b.cur = b.max
	}
	half := b.cur / 2
	return half + rand.N(half+1)
}

func acceptBackoff(d time.Duration) time.Duration {
	if d == 0 {
		return 5 * time.Millisecond
	}
	if d *= 2; d > time.Second {
		d = time.Second
	}
	return d
}

// sleepCtx waits d; it returns false when ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
