package chain

import (
	"fmt"

	"github.com/relaychain/relaychain/internal/daemon"
	"github.com/relaychain/relaychain/mux"
)

// This file is the networks a node accepts from each child
// (accept_networks on a child link; mux/accept.go): their check in one
// file, and in a chain (chain check), that every network a node serves
// is accepted at each hop on its way to the root.

// checkAcceptNetworks checks the accept_networks of one link at path.
func checkAcceptNetworks(ps *daemon.Problems, path string, list Addrs, parent bool) {
	if len(list) == 0 {
		return
	}
	if parent {
		ps.Errorf(path, "only a child link accepts networks: a parent's networks are not taken")
		return
	}
	for i, s := range list {
		if s == mux.AnyNetwork {
			if len(list) > 1 {
				ps.Errorf(fmt.Sprintf("%s[%d]", path, i), "%q accepts every network: it is the only entry or none", mux.AnyNetwork)
			}
			continue
		}
		if _, err := mux.ParseNetwork(s); err != nil {
			ps.Check(fmt.Sprintf("%s[%d]", path, i), err)
		}
	}
}

// accepts reports whether the child link l takes the network n, and
// whether it accepts any network at all.
func (l Link) accepts(n mux.Network) (ok, some bool) {
	for _, s := range l.AcceptNetworks {
		if s == mux.AnyNetwork {
			return true, true
		}
		a, err := mux.ParseNetwork(s)
		if err != nil {
			continue
		}
		some = true
		if n.Within(a) {
			return true, true
		}
	}
	return false, some
}

// checkAccepted reports each hop on the way from a node that serves
// networks (or registers its endpoints) to the root whose child link does
// not accept them: the parent would refuse them, and the nodes above it
// would never learn them.
func (s *Set) checkAccepted(nodes map[string]*Config) []error {
	var errs []error
	seen := map[string]bool{} // parent, child, network: reported once
	for _, c := range s.Nodes {
		if nodes[c.Label] != c || len(c.Serves) == 0 && !c.RegisterEndpoints {
			continue
		}
		var nets []mux.Network
		for _, t := range c.Serves {
			if n, err := mux.ParseNetwork(t); err == nil {
				nets = append(nets, n)
			}
		}
		s.eachLinkUp(c, nodes, func(parent, child *Config, e end) {
			for _, n := range nets {
				key := parent.Label + " " + child.Label + " " + n.String()
				if ok, _ := e.link.accepts(n); ok || seen[key] {
					continue
				}
				seen[key] = true
				errs = append(errs, e.errorf("accept_networks", "%s serves %s (%s), but this link to %s does not accept it: %s would refuse it; add %s (or a network that holds it) to accept_networks",
					c.Label, n, c.file, child.Label, parent.Label, n))
			}
			if _, some := e.link.accepts(mux.Network{}); c.RegisterEndpoints && !some && !seen[parent.Label+" "+child.Label+" @"] {
				seen[parent.Label+" "+child.Label+" @"] = true
				errs = append(errs, e.errorf("accept_networks", "%s registers its endpoints (%s), but this link to %s accepts no networks: %s would refuse every host route; add the networks its endpoints are in to accept_networks",
					c.Label, c.file, child.Label, parent.Label))
			}
		})
	}
	return errs
}

// eachLinkUp calls f for every child link on every way from c up to the
// root: the parent, the child below it and the parent's end of their link.
// A link check reports is left out.
func (s *Set) eachLinkUp(c *Config, nodes map[string]*Config, f func(parent, child *Config, e end)) {
	visited := map[string]bool{c.Label: true}
	queue := []*Config{c}
	for len(queue) > 0 {
		child := queue[0]
		queue = queue[1:]
		for _, pl := range child.Parents {
			parent, ok := nodes[pl.Label]
			if !ok {
				continue // reported by check
			}
			e, ok := linkTo(parent, child.Label)
			if !ok || e.parent {
				continue // reported by check
			}
			f(parent, child, e)
			if !visited[parent.Label] {
				visited[parent.Label] = true
				queue = append(queue, parent)
			}
		}
	}
}

// acceptOverlaps warns about two child links of c whose accept_networks
// overlap (or one that accepts any network beside another that accepts
// some): either child may claim addresses of the other, as a tie or a
// more specific network. A node below both (a diamond) needs it; others
// should not.
func (c *Config) acceptOverlaps() []error {
	var out []error
	type accepted struct {
		i    int
		nets []mux.Network
		any  bool
	}
	var links []accepted
	for i, l := range c.Children {
		a := accepted{i: i}
		for _, s := range l.AcceptNetworks {
			if s == mux.AnyNetwork {
				a.any = true
				continue
			}
			if n, err := mux.ParseNetwork(s); err == nil {
				a.nets = append(a.nets, n)
			}
		}
		if a.any || len(a.nets) > 0 {
			links = append(links, a)
		}
	}
	for x := 0; x < len(links); x++ {
		for y := x + 1; y < len(links); y++ {
			a, b := links[x], links[y]
			what := ""
			switch {
			case a.any || b.any:
				what = "one of them accepts any network"
			default:
			pairs:
				for _, na := range a.nets {
					for _, nb := range b.nets {
						if na.Within(nb) || nb.Within(na) {
							what = fmt.Sprintf("%s and %s overlap", na, nb)
							break pairs
						}
					}
				}
			}
			if what == "" {
				continue
			}
			la, lb := c.Children[a.i].Label, c.Children[b.i].Label
			out = append(out, c.pos.Errorf(fmt.Sprintf("children[%d].accept_networks", b.i),
				"the links to %s and %s accept overlapping networks (%s): either child may claim addresses of the other; keep it only for a node below both", la, lb, what))
		}
	}
	return out
}
