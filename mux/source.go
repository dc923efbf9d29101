package mux

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// This file holds the local addresses of a node's connections beyond the
// plain ones: the source address (and port) that dialled links and service
// dials leave from, for firewalls that match the source, and the more
// addresses a link is listened for on (a multihomed host).

// ParseSource reads a source address: "IP" (any port) or "IP:PORT" (IPv6
// as "[::1]:PORT"). A port of 0 is any port.
func ParseSource(s string) (netip.AddrPort, error) {
	if ip, err := netip.ParseAddr(s); err == nil {
		if ip.Zone() != "" {
			return netip.AddrPort{}, fmt.Errorf("source %q: no zones", s)
		}
		return netip.AddrPortFrom(ip.Unmap(), 0), nil
	}
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("source %q: want IP or IP:PORT", s)
	}
	ip, err := netip.ParseAddr(h)
	if err != nil || ip.Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("source %q: %q is not an IP address (a source is an address of this host)", s, h)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("source %q: bad port %q", s, p)
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(port)), nil
}

// sourceDialer returns a dialer that leaves from source ("" or unparsable:
// the system's choice; Validate refused the latter). A pinned port sets
// SO_REUSEADDR, so that a reconnect binds the port again while the last
// connection's socket waits in TIME_WAIT.
func sourceDialer(source string, timeout time.Duration) net.Dialer {
	d := net.Dialer{Timeout: timeout}
	if source == "" {
		return d
	}
	ap, err := ParseSource(source)
	if err != nil {
		return d
	}
	d.LocalAddr = net.TCPAddrFromAddrPort(ap)
	if ap.Port() != 0 {
		d.Control = reuseAddr
	}
	return d
}

// dialFrom dials addr from source and makes a clash on a pinned source
// port a clear error.
func dialFrom(d net.Dialer, dial func(net.Dialer) (net.Conn, error), source string) (net.Conn, error) {
	c, err := dial(d)
	if err != nil && source != "" && errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("source %s is in use by another socket (another link, service or program holds that port): %w", source, err)
	}
	if err != nil && source != "" && errors.Is(err, syscall.EADDRNOTAVAIL) {
		return nil, fmt.Errorf("source %s is not an address of this host, or its port is still held for the same destination: %w", source, err)
	}
	return c, err
}

// validateSource checks a source address key.
func validateSource(what, source string) error {
	if source == "" {
		return nil
	}
	if _, err := ParseSource(source); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// listenEach returns links with one copy of a link per address it is
// listened for on (Listen, then each of ListenAlso), for binding them. The
// copies are for binding only: a listener serves the links as configured
// (listenLinksAt, listensOn), which a link that comes up must match.
func listenEach(links []LinkConfig) []LinkConfig {
	var out []LinkConfig
	for _, lc := range links {
		out = append(out, lc)
		for _, a := range lc.ListenAlso {
			lc.Listen = a
			out = append(out, lc)
		}
	}
	return out
}

// listensOn reports whether the link is listened for on addr.
func (lc LinkConfig) listensOn(addr string) bool {
	return addr != "" && (lc.Listen == addr || slices.Contains(lc.ListenAlso, addr))
}
