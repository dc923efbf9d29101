package mux

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"
)

// Kinds of entries that take the destination from their client.
const (
	EntrySOCKS5      = "socks5"       // RFC 1928 CONNECT
	EntryHTTPConnect = "http_connect" // HTTP CONNECT
	EntryPortMap     = "port_map"     // one port of a port_map entry: a fixed address
)

// AddrEntry configures an entry that takes each session's destination
// address from its client (AddAddrEntry).
type AddrEntry struct {
	Name string // for the logs
	Kind string // EntrySOCKS5 or EntryHTTPConnect
	// Dest is the label of the node that serves every session of the
	// entry (an upcall entry on a gwproxy names the epproxy); "" picks
	// the node from the networks announced below this node, the most
	// specific match (a downcall entry on the epproxy).
	Dest string
	// Users, when set, are the user names and passwords a client must
	// give: SOCKS5 username/password (RFC 1929), or HTTP Basic in
	// Proxy-Authorization. Empty: no authentication.
	Users map[string]string

	// Host and Port, on an entry of kind EntryPortMap, are the one
	// destination of all its sessions: the client says nothing, and a
	// session that cannot open is closed at once.
	Host string
	Port uint16

	// Rules.

	// Rules decide on each client's request once its destination node is
	// chosen, before the session opens (police.go): over the destination
	// (address or host name, port), the client's source address and the
	// destination node's label. The entry denies by default: a request no
	// rule allows is refused (SOCKS5 reply 2, HTTP 403).
	Rules ACL
	// Where names the entry for the logs of a default deny
	// ("epproxy.yaml:40"); optional.
	Where string

	// Hashed passwords (entryauth.go).

	// PasswordHashes are more users, whose passwords are given as bcrypt
	// hashes ("$2a$10$..."), by user name; a name is in Users or here, not
	// both. A client's failures are capped per source address
	// (AuthFailMax within AuthFailWindow). Default none.
	PasswordHashes map[string]string
}

// AddAddrEntry makes ln an entry of kind e.Kind: each connection accepted
// on it names its destination (SOCKS5 or HTTP CONNECT) and becomes a
// session of the address form. Before Serve, or while the node serves, as
// AddEntry; RemoveEntry removes it. The node closes ln.
func (n *Node) AddAddrEntry(ln net.Listener, e AddrEntry) {
	ec := e
	t := n.tuning()
	n.addEntry(&entry{ln: ln, name: e.Name, dest: e.Dest, addr: &ec,
		gate: &helloGate{max: t.MaxHellos, perSource: t.MaxHellosPerSource}})
}

// serveAddrEntry reads the client's request, opens the session to the
// address it names and answers the client with the outcome, then carries
// the bytes. The request and the answer happen within the open timeout.
// It closes conn.
func (n *Node) serveAddrEntry(e *entry, conn net.Conn) {
	defer func() {
		if r := recover(); r != nil {
			n.log.WithField("component", "entry").Errorf("panic serving %s: %v\n%s", conn.RemoteAddr(), r, stack())
			_ = conn.Close()
		}
	}()
	var carry func()
	shallow(func() {
		// The gate acceptEntry passed counts the request and the open.
		defer e.gate.leave(sourceOf(conn))
		carry = n.openAddrEntry(e, conn)
	})
	if carry != nil {
		carry()
	}
}

// openAddrEntry is serveAddrEntry's open, run through shallow (see
// serveEntry): the request, the open and the answer. It returns the
// carrying of the bytes, nil when the session did not open (conn is
// closed then).
func (n *Node) openAddrEntry(e *entry, conn net.Conn) (carry func()) {
	log := n.log.WithFields(logrus.Fields{"component": "session", "entry": e.name, "client": conn.RemoteAddr().String()})
	n.noteClient(conn)
	_ = conn.SetDeadline(time.Now().Add(n.tuning().OpenTimeout))
	var host string
	var port uint16
	var answer func(code Status) error
	var err error
	switch e.addr.Kind {
	case EntryPortMap:
		host, port = e.addr.Host, e.addr.Port
		answer = func(code Status) error {
			if tc, ok := conn.(*net.TCPConn); ok && code != StatusOK {
				_ = tc.SetLinger(0)
			}
			return nil
		}
	case EntrySOCKS5:
		host, port, answer, err = n.socksAccept(e.addr, conn)
	default:
		host, port, answer, err = n.connectAccept(e.addr, conn)
	}
	if err != nil {
		if !errors.Is(err, ErrAuthFailed) { // logged so, flood-proof
			log.WithError(err).Warn("entry request refused")
		}
		_ = conn.Close()
		return
	}
	fields := logrus.Fields{"entry": e.name, "client": conn.RemoteAddr().String()}
	var denied bool // by the entry's rules, and logged so
	police := func(h Header) error {
		err := n.policeAddrClient(e, conn, h)
		denied = err != nil
		return err
	}
	c, h, err := n.openAddrPoliced(n.ctx, e.dest, host, port, fields, police)
	log = n.sessionLog(h).WithFields(fields)
	// The answer has a write timeout of its own: the open may have taken
	// the time the request had.
	_ = conn.SetDeadline(time.Now().Add(n.tuning().WriteTimeout))
	if err != nil {
		if !denied {
			log.WithError(err).Error("open failed")
		}
		n.outcomes.add(errOutcome(err))
		code := StatusFailed
		var se *StatusError
		if errors.As(err, &se) {
			code = se.Code
		}
		_ = answer(code)
		_ = conn.Close()
		return
	}
	if err := answer(StatusOK); err != nil {
		log.WithError(err).Info("aborted: the client did not take the answer")
		c.Abort(err)
		n.outcomes.add(OutcomeAborted)
		_ = conn.Close()
		return
	}
	_ = conn.SetDeadline(time.Time{})
	log.Info("opened")
	start := time.Now()
	unlive := n.addLive(c.Abort)
	untrack := e.conns.track(c)
	return func() {
		defer unlive()
		res := spliceEnd(conn, c, n.tuning().IdleTimeout, n.tuning().PeerWriteTimeout)
		untrack()
		c.logEnd(log, res, start)
		n.outcomes.add(endOutcome(res))
	}
}

// socksAccept runs the SOCKS5 negotiation up to the request, and returns
// the destination and the function that sends the reply.
func (n *Node) socksAccept(e *AddrEntry, conn net.Conn) (string, uint16, func(Status) error, error) {
	methods, err := socksMethods(conn)
	if err != nil {
		return "", 0, nil, err
	}
	want := byte(0x00)
	if e.hasUsers() {
		want = 0x02
	}
	if !bytesContain(methods, want) {
		_, _ = conn.Write([]byte{5, 0xff})
		return "", 0, nil, fmt.Errorf("%w: socks client offers none of the methods this entry takes (%#x)", ErrBadRequest, want)
	}
	if _, err := conn.Write([]byte{5, want}); err != nil {
		return "", 0, nil, err
	}
	if want == 0x02 {
		user, pass, err := socksUserPass(conn)
		if err != nil {
			return "", 0, nil, err
		}
		if err := n.authenticate(e, conn, user, pass); err != nil {
			_, _ = conn.Write([]byte{1, 1})
			return "", 0, nil, fmt.Errorf("socks: %w", err)
		}
		if _, err := conn.Write([]byte{1, 0}); err != nil {
			return "", 0, nil, err
		}
	}
	host, port, rep, err := socksRequest(conn)
	if err != nil {
		if rep != 0 {
			_, _ = conn.Write(socksReplyBytes(rep))
		}
		return "", 0, nil, err
	}
	answer := func(code Status) error {
		_, err := conn.Write(socksReplyBytes(socksReply(code)))
		return err
	}
	return host, port, answer, nil
}

// connectAccept reads an HTTP CONNECT request, and returns the destination
// and the function that sends the answer.
func (n *Node) connectAccept(e *AddrEntry, conn net.Conn) (string, uint16, func(Status) error, error) {
	host, port, auth, status, err := connectRequest(conn)
	if err != nil {
		if status != 0 {
			writeHTTPStatus(conn, status, http.StatusText(status), "")
		}
		return "", 0, nil, err
	}
	if e.hasUsers() {
		user, pass, ok := basicAuth(auth)
		if !ok {
			writeHTTPStatus(conn, 407, "Proxy Authentication Required", "Proxy-Authenticate: Basic realm=\"relaychain\"\r\n")
			return "", 0, nil, fmt.Errorf("%w: connect without a valid Proxy-Authorization (user %q)", ErrBadRequest, user)
		}
		if err := n.authenticate(e, conn, user, pass); err != nil {
			writeHTTPStatus(conn, 407, "Proxy Authentication Required", "Proxy-Authenticate: Basic realm=\"relaychain\"\r\n")
			return "", 0, nil, fmt.Errorf("connect: %w", err)
		}
	}
	answer := func(code Status) error {
		st, text := httpStatus(code)
		_, err := fmt.Fprintf(conn, "HTTP/1.1 %d %s\r\n\r\n", st, text)
		return err
	}
	return host, port, answer, nil
}

func writeHTTPStatus(conn net.Conn, status int, text, headers string) {
	_, _ = fmt.Fprintf(conn, "HTTP/1.1 %d %s\r\n%sContent-Length: 0\r\n\r\n", status, text, headers)
}

func bytesContain(b []byte, x byte) bool {
	for _, c := range b {
		if c == x {
			return true
		}
	}
	return false
}
