package mux

import (
	"net/netip"
	"sort"
	"strings"
)

// This file is the table of served networks: the networks announced below
// a node and its own, indexed for the most specific match.

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
	epCount map[string]int                // how many of them are host routes of the registry
	// Indexes for lookup: prefixes by their masked value, with a count of
	// the lengths in use; exact names; patterns by suffix.
	prefixes map[netip.Prefix][]*netEntry
	lengths  map[int]int
	hosts    map[string][]*netEntry
	patterns map[string][]*netEntry

	// What each child announced, by owner: a label a child withdraws
	// takes its networks with it (accept.go).
	owned map[string]map[string]map[NetAd]struct{} // child -> owner -> ads
}

func newNetTable() *netTable {
	return &netTable{
		entries:  map[NetAd]*netEntry{},
		byChild:  map[string]map[NetAd]struct{}{},
		epCount:  map[string]int{},
		prefixes: map[netip.Prefix][]*netEntry{},
		lengths:  map[int]int{},
		hosts:    map[string][]*netEntry{},
		patterns: map[string][]*netEntry{},
		owned:    map[string]map[string]map[NetAd]struct{}{},
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
	t.own(child, ad)
	if n.Endpoint {
		t.epCount[child]++
	}
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
	t.disown(child, ad)
	if isEndpointAd(ad) {
		if t.epCount[child]--; t.epCount[child] <= 0 {
			delete(t.epCount, child)
		}
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

// own records in the owner index that child announces ad.
func (t *netTable) own(child string, ad NetAd) {
	byOwner := t.owned[child]
	if byOwner == nil {
		byOwner = map[string]map[NetAd]struct{}{}
		t.owned[child] = byOwner
	}
	ads := byOwner[ad.Owner]
	if ads == nil {
		ads = map[NetAd]struct{}{}
		byOwner[ad.Owner] = ads
	}
	ads[ad] = struct{}{}
}

// disown removes ad of child from the owner index.
func (t *netTable) disown(child string, ad NetAd) {
	byOwner := t.owned[child]
	delete(byOwner[ad.Owner], ad)
	if len(byOwner[ad.Owner]) == 0 {
		delete(byOwner, ad.Owner)
	}
	if len(byOwner) == 0 {
		delete(t.owned, child)
	}
}

// ownedBy is a copy of the networks of owner that child announces.
func (t *netTable) ownedBy(child, owner string) map[NetAd]struct{} {
	src := t.owned[child][owner]
	out := make(map[NetAd]struct{}, len(src))
	for a := range src {
		out[a] = struct{}{}
	}
	return out
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
			w := e.net.portWidth()
			if e.net.Endpoint { // a configured network of the same address first
				w += 1 << 17
			}
			switch {
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
