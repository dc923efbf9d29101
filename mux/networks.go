package mux

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// This file is the served networks of PROTOCOL.md section 3: what a node
// declares it can reach (Config.Serves), how such a declaration is written
// and matched, and the table of the networks announced below a node, which
// picks the node that serves a destination address.

// Network is one served network: an IP prefix, an exact host name or a
// host pattern ("*.site-a.example"), optionally limited to a port range.
// Its text form (String, ParseNetwork):
//
//	10.20.0.0/16          a prefix, every port
//	10.20.0.5             one address (a /32 or /128)
//	10.20.0.0/16:22       a prefix, port 22
//	10.20.0.0/16:8000-8100
//	2001:db8::/32         IPv6, every port
//	[2001:db8::/32]:443   IPv6 with a port
//	db.site-a.example     one host name (compared without case)
//	*.site-a.example:22   every name under site-a.example (not the name itself)
type Network struct {
	Prefix  netip.Prefix // valid for an address network
	Host    string       // lower case: an exact name, or the suffix after "*." of a pattern
	Pattern bool         // Host is a pattern's suffix
	PortLo  uint16       // 0 with PortHi 0: every port
	PortHi  uint16

	// Endpoint marks a host route of the endpoint registry (registry.go):
	// an address a node learnt from its clients, not configured. Its text
	// form is "@" and the address; it is never read from a configuration.
	Endpoint bool
}

// maxNetworkText bounds a network's text form: it travels with a one-byte
// length.
const maxNetworkText = 255

// ParseNetwork reads a network's text form.
func ParseNetwork(s string) (Network, error) {
	if s == "" || len(s) > maxNetworkText {
		return Network{}, fmt.Errorf("network %q: want 1 to %d bytes", s, maxNetworkText)
	}
	addr, ports := s, ""
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return Network{}, fmt.Errorf("network %q: no closing ]", s)
		}
		addr, ports = s[1:end], s[end+1:]
		if ports != "" {
			if !strings.HasPrefix(ports, ":") {
				return Network{}, fmt.Errorf("network %q: want [ADDRESS]:PORTS", s)
			}
			ports = ports[1:]
			if ports == "" {
				return Network{}, fmt.Errorf("network %q: empty port", s)
			}
		}
	case strings.Count(s, ":") == 1:
		i := strings.IndexByte(s, ':')
		addr, ports = s[:i], s[i+1:]
		if ports == "" {
			return Network{}, fmt.Errorf("network %q: empty port", s)
		}
	}
	var n Network
	if ports != "" {
		lo, hi, err := parsePorts(ports)
		if err != nil {
			return Network{}, fmt.Errorf("network %q: %w", s, err)
		}
		if lo != 1 || hi != 65535 {
			// Every port is written without ports: so it ranks as what
			// it is, a network of every port, beside another.
			n.PortLo, n.PortHi = lo, hi
		}
	}
	if p, err := netip.ParsePrefix(addr); err == nil {
		if p.Addr().Zone() != "" {
			return Network{}, fmt.Errorf("network %q: no zone allowed", s)
		}
		n.Prefix = netip.PrefixFrom(p.Addr().Unmap(), unmappedBits(p)).Masked()
		return n, nil
	}
	if a, err := netip.ParseAddr(addr); err == nil {
		if a.Zone() != "" {
			return Network{}, fmt.Errorf("network %q: no zone allowed", s)
		}
		a = a.Unmap()
		n.Prefix = netip.PrefixFrom(a, a.BitLen())
		return n, nil
	}
	host := strings.ToLower(addr)
	if strings.HasPrefix(host, "*.") {
		n.Pattern, host = true, host[2:]
	}
	if err := checkHostName(host); err != nil {
		return Network{}, fmt.Errorf("network %q: %w", s, err)
	}
	n.Host = host
	return n, nil
}

// unmappedBits is p's length once an IPv4-mapped IPv6 prefix is written as
// IPv4.
func unmappedBits(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return max(p.Bits()-96, 0)
	}
	return p.Bits()
}

func parsePorts(s string) (lo, hi uint16, err error) {
	a, b, ranged := strings.Cut(s, "-")
	pa, err1 := strconv.ParseUint(a, 10, 16)
	pb := pa
	var err2 error
	if ranged {
		pb, err2 = strconv.ParseUint(b, 10, 16)
	}
	if err1 != nil || err2 != nil || pa == 0 || pb == 0 || pb < pa {
		return 0, 0, fmt.Errorf("port %q: want PORT or LOW-HIGH, 1 to 65535", s)
	}
	return uint16(pa), uint16(pb), nil
}

// checkHostName accepts a DNS name: dot-separated labels of letters,
// digits, '-' and '_', each 1 to 63 bytes, at most 253 bytes in all.
func checkHostName(h string) error {
	if h == "" || len(h) > 253 {
		return fmt.Errorf("host name %q: want 1 to 253 bytes", h)
	}
	for _, part := range strings.Split(h, ".") {
		if part == "" || len(part) > 63 {
			return fmt.Errorf("host name %q: empty or over-long label", h)
		}
		for i := 0; i < len(part); i++ {
			c := part[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("host name %q: byte %q not allowed", h, c)
			}
		}
	}
	return nil
}

// CheckDestHost accepts what an open header may carry as a destination
// host: an IP address (without zone) or a host name.
func CheckDestHost(h string) error {
	if a, err := netip.ParseAddr(h); err == nil {
		if a.Zone() != "" {
			return fmt.Errorf("destination %q: no zone allowed", h)
		}
		return nil
	}
	return checkHostName(h)
}

// String is the network's canonical text form.
func (n Network) String() string {
	var a string
	switch {
	case n.Endpoint:
		return "@" + n.Prefix.Addr().String()
	case n.Prefix.IsValid() && n.Prefix.Bits() == n.Prefix.Addr().BitLen():
		a = n.Prefix.Addr().String()
	case n.Prefix.IsValid():
		a = n.Prefix.String()
	case n.Pattern:
		a = "*." + n.Host
	default:
		a = n.Host
	}
	if n.PortLo == 0 {
		return a
	}
	if n.Prefix.IsValid() && n.Prefix.Addr().Is6() {
		a = "[" + a + "]"
	}
	if n.PortLo == n.PortHi {
		return a + ":" + strconv.Itoa(int(n.PortLo))
	}
	return fmt.Sprintf("%s:%d-%d", a, n.PortLo, n.PortHi)
}

// portWidth is how many ports n covers.
func (n Network) portWidth() int {
	if n.PortLo == 0 {
		return 65536
	}
	return int(n.PortHi) - int(n.PortLo) + 1
}

func (n Network) hasPort(p uint16) bool {
	return n.PortLo == 0 || p >= n.PortLo && p <= n.PortHi
}

// Matches reports whether host:port is in n. A host name matches only
// name networks and an IP address only prefixes: a node does not resolve
// names to decide where a session goes.
func (n Network) Matches(host string, port uint16) bool {
	if !n.hasPort(port) {
		return false
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return n.Prefix.IsValid() && n.Prefix.Contains(a.Unmap())
	}
	if n.Prefix.IsValid() {
		return false
	}
	host = strings.ToLower(host)
	if n.Pattern {
		return strings.HasSuffix(host, "."+n.Host)
	}
	return host == n.Host
}

// Ties reports whether n and o, served by two nodes, would be a tie: the
// same address part with port ranges that overlap and are as wide, so
// that for a destination in both neither is more specific.
func (n Network) Ties(o Network) bool { return n.overlapsEqually(o) }

func (n Network) overlapsEqually(o Network) bool {
	if n.Prefix != o.Prefix || n.Host != o.Host || n.Pattern != o.Pattern || n.Endpoint != o.Endpoint || n.portWidth() != o.portWidth() {
		return false
	}
	if n.PortLo == 0 {
		return true
	}
	return n.PortLo <= o.PortHi && o.PortLo <= n.PortHi
}

// NetAd is one network announcement: a node (Owner) serves a network,
// in its text form.
type NetAd struct {
	Owner   string
	Network string
}

func (a NetAd) String() string { return a.Owner + "=" + a.Network }

// The encoding of network announcements in control messages
// (PROTOCOL.md section 3).

// maxNetChunk is the most network announcements one section of a control
// message carries: a delta with two full sections of each kind stays
// under maxCtrlLen.
const maxNetChunk = 512

// netSections is how many network sections a message of type t carries:
// one in a WHO reply and a TELL, two in a delta (added, removed).
func (t ctrlType) netSections() int {
	switch t {
	case ctrlWhoReply, ctrlTell:
		return 1
	case ctrlDelta:
		return 2
	}
	return 0
}

func appendNets(b []byte, ads []NetAd) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(ads)))
	for _, a := range ads {
		b = append(b, byte(len(a.Owner)))
		b = append(b, a.Owner...)
		b = append(b, byte(len(a.Network)))
		b = append(b, a.Network...)
	}
	return b
}

// decodeNets reads a count and that many network announcements from p
// and returns the rest of p. Each network must be in its canonical text
// form, as ParseNetwork and Network.String write it.
func decodeNets(p []byte) ([]NetAd, []byte, error) {
	if len(p) < 2 {
		return nil, nil, fmt.Errorf("%w: network count truncated", ErrBadControl)
	}
	count := int(binary.BigEndian.Uint16(p))
	p = p[2:]
	if count > len(p)/4 { // each takes at least four bytes
		return nil, nil, fmt.Errorf("%w: %d networks in %d bytes", ErrBadControl, count, len(p))
	}
	var out []NetAd
	for i := 0; i < count; i++ {
		var f [2]string
		for j := range f {
			if len(p) < 1 || len(p) < 1+int(p[0]) {
				return nil, nil, fmt.Errorf("%w: network %d truncated", ErrBadControl, i)
			}
			f[j] = string(p[1 : 1+int(p[0])])
			p = p[1+int(p[0]):]
		}
		if err := CheckLabel(f[0]); err != nil {
			return nil, nil, fmt.Errorf("%w: network %d: owner: %w", ErrBadControl, i, err)
		}
		n, err := parseAdNetwork(f[1])
		if err != nil {
			return nil, nil, fmt.Errorf("%w: network %d: %w", ErrBadControl, i, err)
		}
		if n.String() != f[1] {
			return nil, nil, fmt.Errorf("%w: network %d: %q is not in canonical form %q", ErrBadControl, i, f[1], n.String())
		}
		out = append(out, NetAd{Owner: f[0], Network: f[1]})
	}
	return out, p, nil
}

func appendLabels(b []byte, ls []string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(ls)))
	for _, l := range ls {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return b
}

// decodeLabels reads a count and that many labels from p and returns the
// rest of p.
func decodeLabels(p []byte) ([]string, []byte, error) {
	if len(p) < 2 {
		return nil, nil, fmt.Errorf("%w: label count truncated", ErrBadControl)
	}
	count := int(binary.BigEndian.Uint16(p))
	p = p[2:]
	if count > len(p) { // each label takes at least one byte
		return nil, nil, fmt.Errorf("%w: %d labels in %d bytes", ErrBadControl, count, len(p))
	}
	out := make([]string, 0, count)
	for i := 0; i < count; i++ {
		if len(p) < 1 || len(p) < 1+int(p[0]) {
			return nil, nil, fmt.Errorf("%w: label %d truncated", ErrBadControl, i)
		}
		l := string(p[1 : 1+int(p[0])])
		if err := CheckLabel(l); err != nil {
			return nil, nil, fmt.Errorf("%w: label %d: %w", ErrBadControl, i, err)
		}
		out = append(out, l)
		p = p[1+int(p[0]):]
	}
	return out, p, nil
}
