package mux

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// Fuzzers for what the clients of SOCKS5 and HTTP CONNECT entries send:
// each parser must reject bad input with ErrBadRequest, never panic, never
// read past its request, and accept only a destination an open header can
// carry.

func fuzzCheckDest(t *testing.T, host string, port uint16) {
	t.Helper()
	if err := CheckDestHost(host); err != nil || port == 0 {
		t.Fatalf("destination %q port %d accepted: %v", host, port, err)
	}
	h := Header{ID: 1, Hops: 1, Origin: "a", Dest: "b", DestHost: host, DestPort: port}
	h2, err := readHeader(bytes.NewReader(h.encode()[1:]))
	if err != nil || h2 != h {
		t.Fatalf("destination %q:%d does not survive the open header: %+v, %v", host, port, h2, err)
	}
}

func FuzzSocksRequest(f *testing.F) {
	for _, s := range []string{
		"\x05\x01\x00\x01\x7f\x00\x01\x05\x00\x16",                                                 // IPv4 127.0.1.5:22
		"\x05\x01\x00\x04" + strings.Repeat("\x00", 15) + "\x01\x01\xbb",                           // IPv6 ::1:443
		"\x05\x01\x00\x03\x11db.site-a.example\x00\x50",                                            // domain
		"\x05\x01\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x7f\x00\x00\x01\x00\x50", // v4-mapped
		"\x05\x02\x00\x01\x7f\x00\x00\x01\x00\x16",                                                 // BIND
		"\x05\x01\x00\x05\x7f\x00\x00\x01\x00\x16",                                                 // bad address type
		"\x05\x01\x00\x03\x00\x00\x16",                                                             // empty domain
		"\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x00",                                                 // port 0
		"\x04\x01\x00\x01\x7f\x00\x00\x01\x00\x16",                                                 // version 4
		"\x05\x01\x00\x03\x05a b c\x00\x16",                                                        // bad name
		"\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x16DATA",                                             // request, then session bytes
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		host, port, rep, err := socksRequest(r)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error does not match ErrBadRequest: %v", err)
			}
			if rep == socksSucceeded && host != "" {
				t.Fatalf("error with a destination: %q", host)
			}
			return
		}
		fuzzCheckDest(t, host, port)
		used := len(data) - r.Len()
		if data[3] == 1 && used != 10 || data[3] == 4 && used != 22 || data[3] == 3 && used != 7+int(data[4]) {
			t.Fatalf("read %d bytes of a request of address type %d", used, data[3])
		}
	})
}

func FuzzSocksGreeting(f *testing.F) {
	for _, s := range []string{"\x05\x01\x00", "\x05\x02\x00\x02", "\x05\x00", "\x04\x01\x00", "\x05\x03\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		m, err := socksMethods(r)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error does not match ErrBadRequest: %v", err)
			}
		} else if len(m) == 0 || len(m) != int(data[1]) || len(data)-r.Len() != 2+len(m) {
			t.Fatalf("methods %v from %q", m, data)
		}
		r = bytes.NewReader(data)
		user, pass, err := socksUserPass(r)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error does not match ErrBadRequest: %v", err)
			}
			return
		}
		if len(data)-r.Len() != 3+len(user)+len(pass) {
			t.Fatalf("user %q pass %q from %d bytes", user, pass, len(data)-r.Len())
		}
	})
}

func FuzzConnectRequest(f *testing.F) {
	for _, s := range []string{
		"CONNECT 127.0.2.5:80 HTTP/1.1\r\nHost: 127.0.2.5:80\r\n\r\n",
		"CONNECT [::1]:443 HTTP/1.1\r\n\r\nDATA",
		"CONNECT db.site-a.example:5432 HTTP/1.0\r\nProxy-Authorization: Basic YTpi\r\n\r\n",
		"GET / HTTP/1.1\r\n\r\n",
		"CONNECT nohost HTTP/1.1\r\n\r\n",
		"CONNECT a:0 HTTP/1.1\r\n\r\n",
		"CONNECT a:99999 HTTP/1.1\r\n\r\n",
		"CONNECT [fe80::1%eth0]:22 HTTP/1.1\n\n",
		"CONNECT a b:1 HTTP/1.1\r\n\r\n",
		"CONNECT a:1 HTTP/1.1\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		host, port, _, status, err := connectRequest(r)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error does not match ErrBadRequest: %v", err)
			}
			if status != 0 && (status < 400 || status > 499) {
				t.Fatalf("status %d for a bad request", status)
			}
			return
		}
		fuzzCheckDest(t, host, port)
		used := data[:len(data)-r.Len()]
		if !bytes.HasSuffix(used, []byte("\n\n")) && !bytes.HasSuffix(used, []byte("\r\n\r\n")) {
			t.Fatalf("request read up to %q, not its empty line", used)
		}
		if bytes.Contains(used[:len(used)-2], []byte("\n\n")) || bytes.Contains(used[:len(used)-2], []byte("\r\n\r\n")) {
			t.Fatalf("read past the empty line: %q", used)
		}
		if a, err := netip.ParseAddr(host); err == nil && a.Is4In6() {
			t.Fatalf("v4-mapped address %s not unmapped", host)
		}
	})
}
