package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// CheckDialAddr reports whether s is an address to dial: HOST:PORT with a
// host name or IP address (IPv6 in brackets, "[::1]:7000") and a port
// 1..65535.
func CheckDialAddr(s string) error {
	return checkHostPort(s, false, false)
}

// CheckListenAddr reports whether s is an address to listen on: like
// CheckDialAddr, but the host may be left out (":7000", all interfaces), and
// port 0 (any free port) is accepted when allowPortZero is set.
func CheckListenAddr(s string, allowPortZero bool) error {
	return checkHostPort(s, true, allowPortZero)
}

func checkHostPort(s string, listen, allowPortZero bool) error {
	if s == "" {
		return errors.New("address is empty")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return fmt.Errorf("address %q: %s (want HOST:PORT, [IPv6]:PORT)", s, ae.Err)
		}
		return fmt.Errorf("address %q: %w", s, err)
	}
	if strings.HasPrefix(s, "[") && !strings.Contains(host, ":") {
		return fmt.Errorf("address %q: brackets are only for IPv6 addresses", s)
	}
	if err := checkHost(host, listen); err != nil {
		return fmt.Errorf("address %q: %w", s, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || port == "" || port[0] == '+' || port[0] == '-' {
		return fmt.Errorf("address %q: port %q is not a number", s, port)
	}
	low := 1
	if listen && allowPortZero {
		low = 0
	}
	if n < low || n > 65535 {
		return fmt.Errorf("address %q: port %d out of range %d..65535", s, n, low)
	}
	return nil
}

func checkHost(host string, listen bool) error {
	if host == "" {
		if listen {
			return nil
		}
		return errors.New("host is missing")
	}
	if strings.Contains(host, ":") {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("bad IPv6 address %q", host)
		}
		return nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if len(host) > 253 {
		return errors.New("host name is longer than 253 characters")
	}
	parts := strings.Split(strings.TrimSuffix(host, "."), ".")
	if _, err := strconv.Atoi(parts[len(parts)-1]); err == nil {
		return fmt.Errorf("bad IP address %q", host)
	}
	for _, part := range parts {
		if part == "" || len(part) > 63 || part[0] == '-' || part[len(part)-1] == '-' {
			return fmt.Errorf("bad host name %q", host)
		}
		for i := 0; i < len(part); i++ {
			if c := part[i]; !isAlnum(c) && c != '-' && c != '_' {
				return fmt.Errorf("bad host name %q", host)
			}
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
