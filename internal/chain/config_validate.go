package chain

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/relaychain/relaychain/internal/daemon"
	"github.com/relaychain/relaychain/mux"
)

// This file is the validation of a loaded configuration (Validate): every
// problem reported at once, each with its line and key, and the listen
// addresses of the file checked for clashes.

// Validate checks everything the decode could not, reporting every problem.
func (c *Config) Validate(pos *daemon.Positions) error {
	ps := &daemon.Problems{Pos: pos}
	k := c.kind
	if c.Label == "" {
		ps.Errorf("label", "missing: every node needs a unique label")
	} else {
		ps.Check("label", mux.CheckLabel(c.Label))
	}
	c.Log.Validate(ps, "log")

	labels := map[string]string{} // label -> path where first used
	listens := []listenUse{}
	checkLinks := func(key string, links []Link, allowed bool, what string) {
		if len(links) > 0 && !allowed {
			ps.Errorf(key, "%s has no %s", k.withArticle(), what)
			return
		}
		for i, l := range links {
			p := fmt.Sprintf("%s[%d]", key, i)
			switch {
			case l.Label == "":
				ps.Errorf(p+".label", "missing: the neighbour's label")
			case mux.CheckLabel(l.Label) != nil:
				ps.Check(p+".label", mux.CheckLabel(l.Label))
			case l.Label == c.Label:
				ps.Errorf(p+".label", "%s is this node's own label", l.Label)
			default:
				if first, dup := labels[l.Label]; dup {
					ps.Errorf(p+".label", "label %s is used twice (first at %s)", l.Label, first)
				} else {
					labels[l.Label] = p + ".label"
				}
			}
			switch {
			case l.Dial == "" && len(l.Listen) == 0:
				ps.Errorf(p, "link to %s has no direction: set dial (this node connects) or listen (the neighbour connects)", l.Label)
			case l.Dial != "" && len(l.Listen) > 0:
				ps.Errorf(p, "link to %s sets both dial and listen; choose one", l.Label)
			case l.Dial != "":
				ps.Check(p+".dial", daemon.CheckDialAddr(l.Dial))
			default:
				listens = append(listens, checkListens(ps, p+".listen", l.Listen, true)...)
			}
			if l.Source != "" && l.Dial == "" {
				ps.Errorf(p+".source", "only a dialled link has a source address")
			}
			listens = append(listens, checkSource(ps, p+".source", l.Source)...)
			checkAcceptNetworks(ps, p+".accept_networks", l.AcceptNetworks, key == "parents")
			checkAcceptLabels(ps, p+".accept_labels", l.AcceptLabels, key == "parents")
		}
	}
	checkLinks("parents", c.Parents, k.Parents, "parents")
	checkLinks("children", c.Children, k.Children, "children")
	if k.Parents && len(c.Parents) == 0 {
		ps.Errorf("parents", "missing: %s needs at least one parent", k.withArticle())
	}
	c.validateTLS(ps)

	if len(c.Services) > 0 && !k.Services {
		ps.Errorf("services", "%s offers no services", k.withArticle())
	}
	names := map[string]bool{}
	for i, s := range c.Services {
		p := fmt.Sprintf("services[%d]", i)
		switch {
		case s.Name == "":
			ps.Errorf(p+".name", "missing: the service name entries ask for")
		case mux.CheckLabel(s.Name) != nil:
			ps.Errorf(p+".name", "%v", mux.CheckLabel(s.Name))
		case names[s.Name]:
			ps.Errorf(p+".name", "service %s is defined twice", s.Name)
		}
		names[s.Name] = true
		if len(s.Addrs) == 0 {
			ps.Errorf(p+".addrs", "missing: at least one HOST:PORT to dial")
		}
		for j, a := range s.Addrs {
			ps.Check(fmt.Sprintf("%s.addrs[%d]", p, j), daemon.CheckDialAddr(a))
		}
		for j, a := range s.Allow {
			ps.Check(fmt.Sprintf("%s.allow[%d]", p, j), mux.CheckLabel(a))
		}
		parseRules(ps, p+".rules", s.Rules, false)
		listens = append(listens, checkSource(ps, p+".source", s.Source)...)
	}

	if len(c.Entries) > 0 && !k.Entries {
		ps.Errorf("entries", "%s has no entries", k.withArticle())
	}
	enames := map[string]bool{}
	for i, e := range c.Entries {
		p := fmt.Sprintf("entries[%d]", i)
		switch {
		case e.Name == "":
			ps.Errorf(p+".name", "missing: a name for the logs")
		case enames[e.Name]:
			ps.Errorf(p+".name", "entry %s is defined twice", e.Name)
		}
		enames[e.Name] = true
		if e.Kind == KindPortMap {
			c.validatePortMap(ps, p, e)
			continue
		}
		if len(e.Listen) == 0 {
			ps.Errorf(p+".listen", "missing: the HOST:PORT clients connect to")
		} else {
			listens = append(listens, checkListens(ps, p+".listen", e.Listen, false)...)
		}
		if e.Kind != "" { // the destination comes from the client: addrentry.go
			c.validateAddrEntry(ps, p, e)
			continue
		}
		parseRules(ps, p+".rules", e.Rules, true)
		switch {
		case e.Dest == "":
			ps.Errorf(p+".dest", "missing: the label of the node that serves the sessions")
		case mux.CheckLabel(e.Dest) != nil:
			ps.Check(p+".dest", mux.CheckLabel(e.Dest))
		case e.Dest == c.Label && c.Label != "":
			ps.Errorf(p+".dest", "%s is this node itself", e.Dest)
		}
		if e.Service == "" {
			ps.Errorf(p+".service", "missing: the service name at %s", e.Dest)
		} else if err := mux.CheckLabel(e.Service); err != nil {
			ps.Errorf(p+".service", "%v", err)
		}
	}
	if c.Events != nil {
		c.Events.validate(ps, k, listens)
		listens = append(listens, c.Events.eventListens()...)
	} else if k.Name == EventSink.Name {
		ps.Errorf("events", "missing: an eventsink needs its events section")
	} else if k.Name != EPProxy.Name && ps.Pos.Has("events") {
		// "events:" with no value decodes to nil; still not for this kind.
		ps.Errorf("events", "%s has no events section", k.withArticle())
	}
	if c.Admin.Listen != "" {
		if err := daemon.CheckListenAddr(c.Admin.Listen, false); err != nil {
			ps.Check("admin.listen", err)
		} else {
			listens = append(listens, listenUse{addr: c.Admin.Listen, path: "admin.listen"})
		}
	}
	if c.Admin.PProf && c.Admin.Listen == "" {
		ps.Errorf("admin.pprof", "needs admin.listen: profiling is served on the HTTP listener")
	}
	checkClashes(ps, listens)
	c.validateServes(ps)
	c.validateRegistry(ps)
	c.Tuning.validate(ps)
	c.ParentChoice.validate(ps, k, c.Parents, c.Children)
	if c.ShutdownGrace < 0 {
		ps.Errorf("shutdown_grace", "must not be negative")
	}
	return ps.Err()
}

// listenUse is one listen address in the file, for clash checks.
type listenUse struct {
	addr string
	path string
	link bool // link listeners may share an address with each other
	udp  bool
}

// checkClashes reports two listeners on one port, unless both are link
// listeners (one port may serve several links).
func checkClashes(ps *daemon.Problems, uses []listenUse) {
	for i := range uses {
		for j := 0; j < i; j++ {
			a, b := uses[j], uses[i]
			if a.link && b.link && a.addr == b.addr {
				continue
			}
			if a.udp != b.udp {
				continue
			}
			if clash(a.addr, b.addr) {
				ps.Errorf(b.path, "port clash: %s is also used at %s", b.addr, a.path)
			}
		}
	}
}

// clash reports whether listening on a and on b would collide: the same
// port (":7000" and ":07000" too) on the same host or a wildcard host.
// IP addresses are compared as addresses ("::1" and "0:0::1" are one).
func clash(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil {
		return false
	}
	na, err1 := strconv.Atoi(pa)
	nb, err2 := strconv.Atoi(pb)
	if err1 != nil || err2 != nil || na != nb {
		return false
	}
	wild := func(h string) bool {
		ip, err := netip.ParseAddr(h)
		return h == "" || err == nil && ip.IsUnspecified()
	}
	if wild(ha) || wild(hb) {
		return true
	}
	ipa, err1 := netip.ParseAddr(ha)
	ipb, err2 := netip.ParseAddr(hb)
	if err1 == nil && err2 == nil {
		return ipa.Unmap() == ipb.Unmap()
	}
	return ha == hb
}
