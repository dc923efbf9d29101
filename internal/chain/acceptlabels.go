package chain

import (
	"fmt"
	"path"

	"github.com/relaychain/relaychain/internal/daemon"
	"github.com/relaychain/relaychain/mux"
)

// This file is the labels a node accepts from each child (accept_labels
// on a child link; mux/acceptlabels.go): their check, the default (the
// child's own label only), and in a chain (chain check), that every
// label is accepted at each hop on its way to the root.

// checkAcceptLabels checks the accept_labels of one link at path.
func checkAcceptLabels(ps *daemon.Problems, path string, list Addrs, parent bool) {
	if len(list) == 0 {
		return
	}
	if parent {
		ps.Errorf(path, "only a child link accepts labels: a parent's labels are not taken")
		return
	}
	for i, s := range list {
		if s == mux.AnyLabel {
			if len(list) > 1 {
				ps.Errorf(fmt.Sprintf("%s[%d]", path, i), "%q accepts every label: it is the only entry or none", mux.AnyLabel)
			}
			continue
		}
		ps.Check(fmt.Sprintf("%s[%d]", path, i), mux.CheckGlob(s))
	}
}

// acceptLabels is what the child link l passes to mux: nil for "any",
// else its list, or the child's own label alone when absent.
func (l Link) acceptLabels() []string {
	switch {
	case len(l.AcceptLabels) == 1 && l.AcceptLabels[0] == mux.AnyLabel:
		return nil
	case len(l.AcceptLabels) == 0:
		return []string{l.Label}
	}
	return append([]string(nil), l.AcceptLabels...)
}

// acceptsLabel reports whether the child link l takes label, as the node
// does: the own label of another child link of the node (sibling) only
// from an entry that names it exactly.
func (l Link) acceptsLabel(label string, sibling bool) bool {
	if label == l.Label {
		return true
	}
	for _, p := range l.AcceptLabels {
		if sibling {
			if p == label {
				return true
			}
			continue
		}
		if p == mux.AnyLabel {
			return true
		}
		if ok, err := path.Match(p, label); err == nil && ok {
			return true
		}
	}
	return false
}

// checkAcceptedLabels reports each hop on the way from a node to the root
// whose child link does not accept the node's label: the parent would
// refuse it, sessions to it would find no route there, and the nodes
// above it would never learn it.
func (s *Set) checkAcceptedLabels(nodes map[string]*Config) []error {
	var errs []error
	seen := map[string]bool{} // parent, child, label: reported once
	for _, c := range s.Nodes {
		if nodes[c.Label] != c {
			continue
		}
		s.eachLinkUp(c, nodes, func(parent, child *Config, e end) {
			key := parent.Label + " " + child.Label + " " + c.Label
			if !e.link.acceptsLabel(c.Label, isChildOf(parent, c.Label)) && !seen[key] {
				seen[key] = true
				errs = append(errs, e.errorf("accept_labels", "%s (%s) is below %s, but this link to %s does not accept its label: %s would refuse it, and sessions to it; add %s (or a pattern that matches it) to accept_labels",
					c.Label, c.file, child.Label, child.Label, parent.Label, c.Label))
			}
		})
	}
	return errs
}

// isChildOf reports whether label is the peer of one of c's child links.
func isChildOf(c *Config, label string) bool {
	for _, l := range c.Children {
		if l.Label == label {
			return true
		}
	}
	return false
}
