package mux

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// This file holds the two client protocols of the entries that take the
// destination from their client: SOCKS5 (RFC 1928, CONNECT only, with
// no authentication or username/password, RFC 1929) and HTTP CONNECT
// (RFC 9110 section 9.3.6). Each reads exactly the bytes of its request,
// never more, so what the client sends next belongs to the session.

// ErrBadRequest: a client of an entry spoke its protocol wrong.
var ErrBadRequest = errors.New("bad entry request")

// SOCKS5 reply codes (RFC 1928 section 6).
const (
	socksSucceeded          byte = 0x00
	socksGeneralFailure     byte = 0x01
	socksNotAllowed         byte = 0x02
	socksNetUnreachable     byte = 0x03
	socksHostUnreachable    byte = 0x04
	socksConnRefused        byte = 0x05
	socksTTLExpired         byte = 0x06
	socksCmdNotSupported    byte = 0x07
	socksAddrTypeNotSupport byte = 0x08
)

// socksReply maps a session open's status to the SOCKS5 reply code.
func socksReply(code Status) byte {
	switch code {
	case StatusOK:
		return socksSucceeded
	case StatusNoRoute:
		return socksNetUnreachable
	case StatusRefused:
		return socksConnRefused
	case StatusDenied:
		return socksNotAllowed
	case StatusTimeout, StatusUnresolved:
		return socksHostUnreachable
	}
	return socksGeneralFailure
}

// httpStatus maps a session open's status to the HTTP status of a
// CONNECT's answer.
func httpStatus(code Status) (int, string) {
	switch code {
	case StatusOK:
		return 200, "Connection established"
	case StatusDenied:
		return 403, "Forbidden"
	case StatusTimeout:
		return 504, "Gateway Timeout"
	case StatusNoRoute, StatusRefused, StatusUnresolved:
		return 502, "Bad Gateway"
	}
	return 503, "Service Unavailable"
}

// socksMethods reads a SOCKS5 greeting (RFC 1928 section 3) and returns
// the methods the client offers.
func socksMethods(r io.Reader) ([]byte, error) {
	var fix [2]byte
	if _, err := io.ReadFull(r, fix[:]); err != nil {
		return nil, fmt.Errorf("%w: socks greeting: %w", ErrBadRequest, err)
	}
	if fix[0] != 5 {
		return nil, fmt.Errorf("%w: socks version %d", ErrBadRequest, fix[0])
	}
	if fix[1] == 0 {
		return nil, fmt.Errorf("%w: socks greeting offers no method", ErrBadRequest)
	}
	m := make([]byte, fix[1])
	if _, err := io.ReadFull(r, m); err != nil {
		return nil, fmt.Errorf("%w: socks methods: %w", ErrBadRequest, err)
	}
	return m, nil
}

// socksUserPass reads a username/password request (RFC 1929 section 2).
func socksUserPass(r io.Reader) (user, pass string, err error) {
	var f [2]string
	var ver [1]byte
	if _, err := io.ReadFull(r, ver[:]); err != nil {
		return "", "", fmt.Errorf("%w: socks auth: %w", ErrBadRequest, err)
	}
	if ver[0] != 1 {
		return "", "", fmt.Errorf("%w: socks auth version %d", ErrBadRequest, ver[0])
	}
	for i := range f {
		var n [1]byte
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return "", "", fmt.Errorf("%w: socks auth: %w", ErrBadRequest, err)
		}
		b := make([]byte, n[0])
		if _, err := io.ReadFull(r, b); err != nil {
			return "", "", fmt.Errorf("%w: socks auth: %w", ErrBadRequest, err)
		}
		f[i] = string(b)
	}
	return f[0], f[1], nil
}

// socksRequest reads a SOCKS5 request (RFC 1928 section 4). On an error,
// rep is the reply code to send (0: send none, the stream is garbage).
func socksRequest(r io.Reader) (host string, port uint16, rep byte, err error) {
	var fix [4]byte
	if _, err := io.ReadFull(r, fix[:]); err != nil {
		return "", 0, 0, fmt.Errorf("%w: socks request: %w", ErrBadRequest, err)
	}
	if fix[0] != 5 || fix[2] != 0 {
		return "", 0, 0, fmt.Errorf("%w: socks request version %d, reserved %d", ErrBadRequest, fix[0], fix[2])
	}
	var addr []byte
	switch fix[3] {
	case 1:
		addr = make([]byte, 4)
	case 4:
		addr = make([]byte, 16)
	case 3:
		var n [1]byte
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return "", 0, 0, fmt.Errorf("%w: socks request: %w", ErrBadRequest, err)
		}
		addr = make([]byte, n[0])
	default:
		return "", 0, socksAddrTypeNotSupport, fmt.Errorf("%w: socks address type %d", ErrBadRequest, fix[3])
	}
	buf := make([]byte, len(addr)+2)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", 0, 0, fmt.Errorf("%w: socks request: %w", ErrBadRequest, err)
	}
	copy(addr, buf)
	port = binary.BigEndian.Uint16(buf[len(addr):])
	if fix[1] != 1 {
		return "", 0, socksCmdNotSupported, fmt.Errorf("%w: socks command %d: only CONNECT is supported", ErrBadRequest, fix[1])
	}
	switch fix[3] {
	case 1, 4:
		a, _ := netip.AddrFromSlice(addr)
		host = a.Unmap().String()
	default:
		host = strings.ToLower(string(addr))
	}
	if err := CheckDestHost(host); err != nil {
		return "", 0, socksGeneralFailure, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if port == 0 {
		return "", 0, socksGeneralFailure, fmt.Errorf("%w: socks request for port 0", ErrBadRequest)
	}
	return host, port, 0, nil
}

// socksReplyBytes is a SOCKS5 reply with rep and an unspecified bound
// address (0.0.0.0:0): the entry does not know the address the serving
// node dialled from.
func socksReplyBytes(rep byte) []byte {
	return []byte{5, rep, 0, 1, 0, 0, 0, 0, 0, 0}
}

// maxConnectRequest bounds an HTTP CONNECT request with its headers.
const maxConnectRequest = 8 << 10

// connectRequest reads an HTTP CONNECT request and its headers, byte by
// byte up to the empty line so that nothing of the session is taken, and
// returns the authority's host and port and the Proxy-Authorization
// header. On an error, status is the HTTP status to answer (0: none).
func connectRequest(r io.Reader) (host string, port uint16, auth string, status int, err error) {
	var buf []byte
	var b [1]byte
	for !bytes.HasSuffix(buf, []byte("\r\n\r\n")) && !bytes.HasSuffix(buf, []byte("\n\n")) {
		if len(buf) >= maxConnectRequest {
			return "", 0, "", 431, fmt.Errorf("%w: connect request over %d bytes", ErrBadRequest, maxConnectRequest)
		}
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return "", 0, "", 0, fmt.Errorf("%w: connect request: %w", ErrBadRequest, err)
		}
		buf = append(buf, b[0])
	}
	lines := strings.Split(strings.ReplaceAll(string(buf), "\r\n", "\n"), "\n")
	parts := strings.Split(lines[0], " ")
	if len(parts) != 3 || !strings.HasPrefix(parts[2], "HTTP/1.") {
		return "", 0, "", 400, fmt.Errorf("%w: request line %q", ErrBadRequest, lines[0])
	}
	if parts[0] != "CONNECT" {
		return "", 0, "", 405, fmt.Errorf("%w: method %q: only CONNECT is supported", ErrBadRequest, parts[0])
	}
	h, p, err := net.SplitHostPort(parts[1])
	if err != nil {
		return "", 0, "", 400, fmt.Errorf("%w: authority %q: %w", ErrBadRequest, parts[1], err)
	}
	pn, err := strconv.ParseUint(p, 10, 16)
	if err != nil || pn == 0 {
		return "", 0, "", 400, fmt.Errorf("%w: port %q", ErrBadRequest, p)
	}
	if a, err := netip.ParseAddr(h); err == nil {
		h = a.Unmap().String()
	} else {
		h = strings.ToLower(h)
	}
	if err := CheckDestHost(h); err != nil {
		return "", 0, "", 400, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), "Proxy-Authorization") {
			auth = strings.TrimSpace(v)
		}
	}
	return h, uint16(pn), auth, 0, nil
}

// basicAuth decodes a "Basic BASE64(user:pass)" header value.
func basicAuth(v string) (user, pass string, ok bool) {
	scheme, rest, found := strings.Cut(v, " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
	if err != nil {
		return "", "", false
	}
	return strings.Cut(string(raw), ":")
}
