package muxtest

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// SOCKS5 and HTTP CONNECT clients, for the tests of entries that take the
// destination from their client.

// SOCKSConnect connects to the SOCKS5 entry at entry and asks it for
// host:port (an IP address or a name), with username/password when user
// is set. It returns the connection, carrying the session, when the reply
// is 0 (succeeded); else the reply code and the connection closed. An
// error is a failure below the reply. Every step has a 10s deadline.
func SOCKSConnect(entry, host string, port uint16, user, pass string) (net.Conn, byte, error) {
	c, err := net.DialTimeout("tcp", entry, 10*time.Second)
	if err != nil {
		return nil, 0, err
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fail := func(rep byte, err error) (net.Conn, byte, error) {
		_ = c.Close()
		return nil, rep, err
	}
	method := byte(0)
	if user != "" {
		method = 2
	}
	if _, err := c.Write([]byte{5, 1, method}); err != nil {
		return fail(0, err)
	}
	var sel [2]byte
	if _, err := io.ReadFull(c, sel[:]); err != nil {
		return fail(0, fmt.Errorf("method selection: %w", err))
	}
	if sel[1] != method {
		return fail(0, fmt.Errorf("method %#x selected, asked %#x", sel[1], method))
	}
	if user != "" {
		b := append([]byte{1, byte(len(user))}, user...)
		b = append(append(b, byte(len(pass))), pass...)
		if _, err := c.Write(b); err != nil {
			return fail(0, err)
		}
		var st [2]byte
		if _, err := io.ReadFull(c, st[:]); err != nil {
			return fail(0, fmt.Errorf("auth status: %w", err))
		}
		if st[1] != 0 {
			return fail(0, fmt.Errorf("auth refused (%d)", st[1]))
		}
	}
	req := []byte{5, 1, 0}
	if a, err := netip.ParseAddr(host); err == nil && a.Is4() {
		req = append(append(req, 1), a.AsSlice()...)
	} else if err == nil {
		req = append(append(req, 4), a.AsSlice()...)
	} else {
		req = append(append(req, 3, byte(len(host))), host...)
	}
	req = binary.BigEndian.AppendUint16(req, port)
	if _, err := c.Write(req); err != nil {
		return fail(0, err)
	}
	var rep [10]byte
	if _, err := io.ReadFull(c, rep[:]); err != nil {
		return fail(0, fmt.Errorf("reply: %w", err))
	}
	if rep[0] != 5 || rep[3] != 1 {
		return fail(0, fmt.Errorf("malformed reply %x", rep))
	}
	if rep[1] != 0 {
		return fail(rep[1], nil)
	}
	_ = c.SetDeadline(time.Time{})
	return c, 0, nil
}

// HTTPConnect connects to the HTTP CONNECT entry at entry and asks it for
// host:port, with Basic authentication when user is set. It returns the
// connection, carrying the session, when the status is 200; else the
// status and the connection closed.
func HTTPConnect(entry, host string, port uint16, user, pass string) (net.Conn, int, error) {
	c, err := net.DialTimeout("tcp", entry, 10*time.Second)
	if err != nil {
		return nil, 0, err
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	auth := ""
	if user != "" {
		auth = "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass)) + "\r\n"
	}
	hp := net.JoinHostPort(host, strconv.Itoa(int(port)))
	if _, err := fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", hp, hp, auth); err != nil {
		_ = c.Close()
		return nil, 0, err
	}
	// Read the answer byte by byte: what follows it is the session's.
	var head []byte
	for !strings.HasSuffix(string(head), "\r\n\r\n") {
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			_ = c.Close()
			return nil, 0, fmt.Errorf("answer %q: %w", head, err)
		}
		head = append(head, b[0])
		if len(head) > 4096 {
			_ = c.Close()
			return nil, 0, fmt.Errorf("answer too long")
		}
	}
	parts := strings.SplitN(string(head), " ", 3)
	status, err := strconv.Atoi(parts[min(1, len(parts)-1)])
	if err != nil {
		_ = c.Close()
		return nil, 0, fmt.Errorf("answer %q", head)
	}
	if status != 200 {
		_ = c.Close()
		return nil, status, nil
	}
	_ = c.SetDeadline(time.Time{})
	return c, status, nil
}
