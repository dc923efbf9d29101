package mux

import (
	"fmt"
	"net/netip"
	"sort"
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
		n.PortLo, n.PortHi = lo, hi
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

// specificity ranks a match: the higher, the more specific. An address
// network ranks by its prefix length; a host name exactly named ranks
// above every pattern, a pattern by the length of its suffix. A narrower
// port range breaks the rank's ties.
func (n Network) specificity() int {
	switch {
	case n.Prefix.IsValid():
		return n.Prefix.Bits()
	case n.Pattern:
		return len(n.Host)
	}
	return 1 << 10
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
	if n.Prefix != o.Prefix || n.Host != o.Host || n.Pattern != o.Pattern || n.portWidth() != o.portWidth() {
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

// netEntry is one announced network, parsed, with the children that
// announced it.
type netEntry struct {
	ad  NetAd
	net Network
	via map[string]struct{} // the children that announced it ("" for this node's own)
}

// netTable holds the networks announced below a node and its own, indexed
// for the most specific match. It has no lock of its own: the routing
// table's lock guards it.
type netTable struct {
	entries map[NetAd]*netEntry
	byChild map[string]map[NetAd]struct{} // what each child announced (accepted ones)
	// Indexes for lookup: prefixes by their masked value, with a count of
	// the lengths in use; exact names; patterns by suffix.
	prefixes map[netip.Prefix][]*netEntry
	lengths  map[int]int
	hosts    map[string][]*netEntry
	patterns map[string][]*netEntry
}

func newNetTable() *netTable {
	return &netTable{
		entries:  map[NetAd]*netEntry{},
		byChild:  map[string]map[NetAd]struct{}{},
		prefixes: map[netip.Prefix][]*netEntry{},
		lengths:  map[int]int{},
		hosts:    map[string][]*netEntry{},
		patterns: map[string][]*netEntry{},
	}
}

// index adds e to the lookup indexes and returns the owners it ties with.
func (t *netTable) index(e *netEntry) (ties []string) {
	n := e.net
	var list []*netEntry
	switch {
	case n.Prefix.IsValid():
		list = t.prefixes[n.Prefix]
	case n.Pattern:
		list = t.patterns[n.Host]
	default:
		list = t.hosts[n.Host]
	}
	for _, o := range list {
		if o.ad.Owner != e.ad.Owner && o.net.overlapsEqually(n) {
			ties = append(ties, o.ad.Owner)
		}
	}
	list = append(list, e)
	switch {
	case n.Prefix.IsValid():
		t.prefixes[n.Prefix] = list
		t.lengths[n.Prefix.Bits()+lenKey(n.Prefix)]++
	case n.Pattern:
		t.patterns[n.Host] = list
	default:
		t.hosts[n.Host] = list
	}
	return ties
}

// lenKey keeps the IPv4 and IPv6 prefix lengths apart in lengths.
func lenKey(p netip.Prefix) int {
	if p.Addr().Is4() {
		return 0
	}
	return 1000
}

func (t *netTable) unindex(e *netEntry) {
	n := e.net
	drop := func(list []*netEntry) []*netEntry {
		for i, o := range list {
			if o == e {
				return append(list[:i:i], list[i+1:]...)
			}
		}
		return list
	}
	switch {
	case n.Prefix.IsValid():
		if l := drop(t.prefixes[n.Prefix]); len(l) > 0 {
			t.prefixes[n.Prefix] = l
		} else {
			delete(t.prefixes, n.Prefix)
		}
		k := n.Prefix.Bits() + lenKey(n.Prefix)
		if t.lengths[k]--; t.lengths[k] <= 0 {
			delete(t.lengths, k)
		}
	case n.Pattern:
		if l := drop(t.patterns[n.Host]); len(l) > 0 {
			t.patterns[n.Host] = l
		} else {
			delete(t.patterns, n.Host)
		}
	default:
		if l := drop(t.hosts[n.Host]); len(l) > 0 {
			t.hosts[n.Host] = l
		} else {
			delete(t.hosts, n.Host)
		}
	}
}

// add records that child ("" for this node) announces ad. It reports
// whether ad is new to the table (to be told upwards) and the owners it
// ties with.
func (t *netTable) add(child string, ad NetAd, n Network) (fresh bool, ties []string) {
	set := t.byChild[child]
	if set == nil {
		set = map[NetAd]struct{}{}
		t.byChild[child] = set
	}
	if _, had := set[ad]; had {
		return false, nil
	}
	set[ad] = struct{}{}
	e := t.entries[ad]
	if e != nil {
		e.via[child] = struct{}{}
		return false, nil
	}
	e = &netEntry{ad: ad, net: n, via: map[string]struct{}{child: {}}}
	t.entries[ad] = e
	return true, t.index(e)
}

// remove records that child no longer announces ad, and reports whether
// ad left the table (to be told upwards).
func (t *netTable) remove(child string, ad NetAd) (gone bool) {
	set := t.byChild[child]
	if _, had := set[ad]; !had {
		return false
	}
	delete(set, ad)
	if len(set) == 0 {
		delete(t.byChild, child)
	}
	e := t.entries[ad]
	if e == nil {
		return false
	}
	delete(e.via, child)
	if len(e.via) > 0 {
		return false
	}
	delete(t.entries, ad)
	t.unindex(e)
	return true
}

// all is every network in the table, sorted: what a node tells its
// parents.
func (t *netTable) all() []NetAd {
	out := make([]NetAd, 0, len(t.entries))
	for ad := range t.entries {
		out = append(out, ad)
	}
	sortAds(out)
	return out
}

func sortAds(ads []NetAd) {
	sort.Slice(ads, func(i, j int) bool {
		if ads[i].Owner != ads[j].Owner {
			return ads[i].Owner < ads[j].Owner
		}
		return ads[i].Network < ads[j].Network
	})
}

// lookup finds the most specific networks that hold host:port: the
// entries of the best rank whose owner usable accepts (a node it still
// routes to). More than one owner in the result is a tie.
func (t *netTable) lookup(host string, port uint16, usable func(owner string) bool) []*netEntry {
	pick := func(list []*netEntry) []*netEntry {
		var best []*netEntry
		width := 1 << 20
		for _, e := range list {
			if !e.net.Matches(host, port) || !usable(e.ad.Owner) {
				continue
			}
			switch w := e.net.portWidth(); {
			case w < width:
				best, width = []*netEntry{e}, w
			case w == width:
				best = append(best, e)
			}
		}
		return best
	}
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap()
		key := lenKey(netip.PrefixFrom(a, 0))
		for bits := a.BitLen(); bits >= 0; bits-- {
			if t.lengths[bits+key] == 0 {
				continue
			}
			p, _ := a.Prefix(bits)
			if best := pick(t.prefixes[p]); len(best) > 0 {
				return best
			}
		}
		return nil
	}
	host = strings.ToLower(host)
	if best := pick(t.hosts[host]); len(best) > 0 {
		return best
	}
	for rest := host; ; {
		i := strings.IndexByte(rest, '.')
		if i < 0 {
			return nil
		}
		rest = rest[i+1:]
		if best := pick(t.patterns[rest]); len(best) > 0 {
			return best
		}
	}
}
