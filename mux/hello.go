package mux

import (
	"fmt"
	"net"
	"sort"
	"sync"

	"github.com/sirupsen/logrus"
)

// This file is PROTOCOL.md section 1: the hello and the verdicts that
// open a link connection, and the reservation of the peer's label while
// a hello is in progress.

// reservation holds a peer's label from the hello until the link is
// registered, so that two connections claiming one label cannot both pass
// the hello. It is released once, either by release or when runLink
// registers the link.
type reservation struct {
	n     *Node
	label string // "" until checkPeer reserved one
	once  sync.Once
}

// release frees the label unless the link took it over. Idempotent.
func (r *reservation) release() {
	r.once.Do(func() {
		if r.label == "" {
			return
		}
		r.n.mu.Lock()
		delete(r.n.reserved, r.label)
		r.n.mu.Unlock()
	})
}

// takeLocked hands the label over to the link being registered. The
// caller holds n.mu.
func (r *reservation) takeLocked() {
	r.once.Do(func() { delete(r.n.reserved, r.label) })
}

// myHello is this node's hello on the link lc.
func (n *Node) myHello(lc LinkConfig, known bool) hello {
	return hello{Version: ProtoVersion, Role: n.cfg.Role, Parent: known && !lc.Parent, Label: n.cfg.Label}
}

// checkPeer decides whether the peer's hello fits the link lc, and
// reserves the peer's label in res when it does.
func (n *Node) checkPeer(lc LinkConfig, h hello, res *reservation) error {
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
	res.label = h.Label
	return nil
}

// helloDial runs the hello on a dialled connection: send ours, read the
// peer's hello and verdict, send our verdict.
func (n *Node) helloDial(lc LinkConfig, conn net.Conn, res *reservation) (hello, error) {
	log := n.log.WithFields(logrus.Fields{"component": "link", "l": lc.Peer, "addr": conn.RemoteAddr().String()})
	fail := func(err error) (hello, error) {
		log.WithError(err).Error("handshake failed")
		return hello{}, err
	}
	if _, err := conn.Write(n.myHello(lc, true).encode()); err != nil {
		return fail(fmt.Errorf("send hello: %w", err))
	}
	peer, err := readHello(conn)
	if err != nil {
		if alert := peerAlert(err); alert != nil {
			err = fmt.Errorf("%w %s: TLS alert %q (it refused this node's certificate: its log says why)", ErrRefusedByPeer, lc.Peer, alert.Error())
		}
		return fail(err)
	}
	ok, reason, err := readVerdict(conn)
	if err != nil {
		return fail(err)
	}
	if !ok {
		return fail(fmt.Errorf("%w %s: %s", ErrRefusedByPeer, peer.Label, reason))
	}
	if err := n.checkPeer(lc, peer, res); err != nil {
		_, _ = conn.Write(encodeVerdict(err.Error(), false))
		return fail(err)
	}
	if _, err := conn.Write(encodeVerdict("", true)); err != nil {
		return fail(fmt.Errorf("send verdict: %w", err))
	}
	return peer, nil
}

// helloListen runs the hello on an accepted connection: read the peer's
// hello, pick its link, send our hello and verdict, read the peer's
// verdict. On a TLS connection the link is auth, the one the client's
// certificate named, and the hello must name the same label; on a
// plaintext one the hello's label picks among the plaintext links. A
// refusal tells the peer why, but never which labels this port serves.
func (n *Node) helloListen(ll *linkListener, conn net.Conn, auth *LinkConfig, res *reservation) (LinkConfig, hello, error) {
	log := n.log.WithFields(logrus.Fields{"component": "link", "addr": conn.RemoteAddr().String()})
	fail := func(err error) (LinkConfig, hello, error) {
		n.refusals.note(sourceOf(conn), log.WithError(err), "handshake failed")
		return LinkConfig{}, hello{}, err
	}
	refuse := func(lc LinkConfig, known bool, told, err error) (LinkConfig, hello, error) {
		msg := append(n.myHello(lc, known).encode(), encodeVerdict(told.Error(), false)...)
		_, _ = conn.Write(msg)
		return fail(err)
	}
	peer, err := readHello(conn)
	if err != nil {
		return refuse(LinkConfig{}, false, err, err)
	}
	log = log.WithField("l", peer.Label)
	var lc LinkConfig
	switch {
	case auth != nil && peer.Label != auth.Peer:
		err := fmt.Errorf("%w: hello names %s but the certificate names %s", ErrRejected, peer.Label, auth.Peer)
		return refuse(*auth, true, err, err)
	case auth != nil:
		lc = *auth
	default:
		var known bool
		lc, known = ll.links[peer.Label]
		if !known || !lc.Plaintext {
			var want []string
			for p, l := range ll.links {
				if l.Plaintext {
					want = append(want, p)
				}
			}
			sort.Strings(want)
			told := fmt.Errorf("%w: unexpected label %s on this port", ErrRejected, peer.Label)
			return refuse(LinkConfig{}, false, told, fmt.Errorf("%w (expected %s)", told, joinLabels(want)))
		}
	}
	if err := n.checkPeer(lc, peer, res); err != nil {
		return refuse(lc, true, err, err)
	}
	msg := append(n.myHello(lc, true).encode(), encodeVerdict("", true)...)
	if _, err := conn.Write(msg); err != nil {
		return fail(fmt.Errorf("send hello: %w", err))
	}
	ok, reason, err := readVerdict(conn)
	if err != nil {
		return fail(err)
	}
	if !ok {
		return fail(fmt.Errorf("%w %s: %s", ErrRefusedByPeer, peer.Label, reason))
	}
	return lc, peer, nil
}
