package chain

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// This file is the links of a chain set (chainset.go): each link seen
// from its two ends, whether they agree (one parent, one child; one
// dials the port the other listens on; alike in insecure_plaintext), and
// the address the dialling end reaches.

// end is one end of a link: the node, the link in its file, and where.
type end struct {
	node   *Config
	link   Link
	key    string // "parents[0]"
	parent bool   // the neighbour is this node's parent
}

// where is the end's key with its file and line, for a problem found at
// the other end: "relay-dmz1/relay.yaml:15: parents[0].listen".
func (e end) where(sub string) string {
	key := e.key
	if sub != "" {
		key += "." + sub
	}
	if line := e.node.pos.Line(key); line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.node.file, line, key)
	}
	return fmt.Sprintf("%s: %s", e.node.file, key)
}

// errorf is a problem at the key sub of this end's link.
func (e end) errorf(sub, format string, args ...any) error {
	key := e.key
	if sub != "" {
		key += "." + sub
	}
	return e.node.pos.Errorf(key, format, args...)
}

// ends returns the links of c as ends, parents first, in file order.
func ends(c *Config) []end {
	var out []end
	for i, l := range c.Parents {
		out = append(out, end{c, l, fmt.Sprintf("parents[%d]", i), true})
	}
	for i, l := range c.Children {
		out = append(out, end{c, l, fmt.Sprintf("children[%d]", i), false})
	}
	return out
}

// linkTo returns c's end of its link to label.
func linkTo(c *Config, label string) (end, bool) {
	for _, e := range ends(c) {
		if e.link.Label == label {
			return e, true
		}
	}
	return end{}, false
}

// setLink is one link of a Set whose two ends agree: dialer dials
// listener, at dialer's Dial address, whose port listener listens on.
type setLink struct {
	dialer, listener end

	// listen is the listener's address that the dialler dials (of its
	// listen list).
	listen string
}

// agree checks the two ends of one link.
func agree(a, b end) (setLink, error) {
	an, bn := a.node.Label, b.node.Label
	switch {
	case a.parent && b.parent:
		return setLink{}, a.errorf("", "%s and %s each take the other for its parent (%s): one lists the other under children",
			an, bn, b.where(""))
	case !a.parent && !b.parent:
		return setLink{}, a.errorf("", "%s and %s each take the other for its child (%s): one lists the other under parents",
			an, bn, b.where(""))
	case a.link.Dial != "" && b.link.Dial != "":
		return setLink{}, a.errorf("dial", "%s and %s both dial this link (%s): one end must listen", an, bn, b.where("dial"))
	case len(a.link.Listen) > 0 && len(b.link.Listen) > 0:
		return setLink{}, a.errorf("listen", "%s and %s both listen for this link (%s): one end must dial", an, bn, b.where("listen"))
	}
	l := setLink{dialer: a, listener: b}
	if a.link.Dial == "" {
		l = setLink{dialer: b, listener: a}
	}
	d, n := l.dialer, l.listener
	l.listen = dialedListen(d.link.Dial, n.link.Listen)
	if l.listen == "" {
		var ports []string
		for _, a := range n.link.Listen {
			ports = append(ports, strconv.Itoa(portOf(a)))
		}
		return setLink{}, d.errorf("dial", "%s dials %s at port %d, but %s listens for it on port %s (%s)",
			d.node.Label, n.node.Label, portOf(d.link.Dial), n.node.Label, strings.Join(ports, ", "), n.where("listen"))
	}
	if a.link.InsecurePlaintext != b.link.InsecurePlaintext {
		plain, tls := a, b
		if !a.link.InsecurePlaintext {
			plain, tls = b, a
		}
		return setLink{}, plain.errorf("insecure_plaintext", "%s carries this link in the clear, %s over TLS (%s): set both ends alike",
			plain.node.Label, tls.node.Label, tls.where(""))
	}
	return l, nil
}

// dialedListen returns the address of listens that a dial of dial reaches:
// of those on its port, the one on its host, else the first (a wildcard,
// or an address the dialler reaches by another name). "": none on its
// port.
func dialedListen(dial string, listens Addrs) string {
	host, _, _ := net.SplitHostPort(dial)
	found := ""
	for _, a := range listens {
		if portOf(a) != portOf(dial) {
			continue
		}
		if h, _, _ := net.SplitHostPort(a); h == host {
			return a
		}
		if found == "" {
			found = a
		}
	}
	return found
}

// portOf returns the port of a HOST:PORT that Validate accepted.
func portOf(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}
