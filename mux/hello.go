package mux

import (
	"fmt"
	"io"
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
	if !n.successorMayLinkLocked(h.Label) || n.reserved[h.Label] {
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
		links := ll.set.Load().links
		lc, known = links[peer.Label]
		if !known || !lc.Plaintext {
			var want []string
			for p, l := range links {
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

// hello is the first message each side sends on a new link connection.
type hello struct {
	Version byte
	Role    Role
	Parent  bool // the sender is the receiver's parent
	Label   string
}

const flagParent = 1

func (h hello) encode() []byte {
	b := make([]byte, 0, 8+len(h.Label))
	b = append(b, helloMagic...)
	var flags byte
	if h.Parent {
		flags |= flagParent
	}
	b = append(b, h.Version, byte(h.Role), flags, byte(len(h.Label)))
	return append(b, h.Label...)
}

// readHello reads and decodes a hello. Only the structure is checked here;
// what the values mean for this node is decided by the caller.
func readHello(r io.Reader) (hello, error) {
	var fix [8]byte
	if _, err := io.ReadFull(r, fix[:]); err != nil {
		return hello{}, fmt.Errorf("%w: %w", ErrBadHello, err)
	}
	return decodeHello(fix, r)
}

func decodeHello(fix [8]byte, r io.Reader) (hello, error) {
	if string(fix[:4]) != helloMagic {
		return hello{}, fmt.Errorf("%w: not a relay chain peer (magic %q)", ErrBadHello, fix[:4])
	}
	h := hello{Version: fix[4], Role: Role(fix[5]), Parent: fix[6]&flagParent != 0}
	if fix[6]&^flagParent != 0 {
		return hello{}, fmt.Errorf("%w: unknown flags %#x", ErrBadHello, fix[6])
	}
	n := int(fix[7])
	if n == 0 || n > maxLabel {
		return hello{}, fmt.Errorf("%w: label length %d", ErrBadHello, n)
	}
	lb := make([]byte, n)
	if _, err := io.ReadFull(r, lb); err != nil {
		return hello{}, fmt.Errorf("%w: label: %w", ErrBadHello, err)
	}
	h.Label = string(lb)
	if err := CheckLabel(h.Label); err != nil {
		return hello{}, fmt.Errorf("%w: label: %w", ErrBadHello, err)
	}
	return h, nil
}

// verdict is each side's answer to the other's hello: accept, or refuse
// with a reason.
func encodeVerdict(reason string, ok bool) []byte {
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	b := []byte{0, byte(len(reason))}
	if !ok {
		b[0] = 1
	}
	return append(b, reason...)
}

func readVerdict(r io.Reader) (ok bool, reason string, err error) {
	var fix [2]byte
	if _, err := io.ReadFull(r, fix[:]); err != nil {
		return false, "", fmt.Errorf("%w: verdict: %w", ErrBadHello, err)
	}
	if fix[0] > 1 {
		return false, "", fmt.Errorf("%w: verdict %d", ErrBadHello, fix[0])
	}
	rb := make([]byte, fix[1])
	if _, err := io.ReadFull(r, rb); err != nil {
		return false, "", fmt.Errorf("%w: verdict reason: %w", ErrBadHello, err)
	}
	return fix[0] == 0, string(rb), nil
}
