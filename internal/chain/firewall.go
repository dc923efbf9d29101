package chain

import (
	"cmp"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// Crossing is one firewall rule that a chain needs: connections to one TCP
// port, opened in one direction, by the nodes that dial it. The link's
// traffic both ways then rides on each connection.
type Crossing struct {
	// Port is the TCP port, Dest the HOST:PORT the dialling nodes dial
	// (from their dial keys).
	Port int
	Dest string
	// Listener is the label of the node that listens, Listen the address
	// it listens on (its listen key).
	Listener, Listen string
	// Dialers are the labels of the nodes that open the connections, in
	// the order of the files.
	Dialers []string
	// Sources are the source addresses the dialers pin ("IP" or
	// "IP:PORT", their source keys; "" where none), in Dialers' order.
	Sources []string
	// Outwards is set when the parents dial their child (the connection is
	// opened from the side nearer the secure zone), clear when the children
	// dial their parent.
	Outwards bool
}

// Crossings checks s (see Check) and returns the firewall rules its links
// need: one per listened port, address dialled and direction, ordered by
// port. Several nodes dialling one port share one rule.
func (s *Set) Crossings() ([]Crossing, error) {
	links, err := s.check()
	if err != nil {
		return nil, err
	}
	var out []Crossing
	for _, l := range links {
		c := Crossing{
			Port:     portOf(l.listen),
			Dest:     l.dialer.link.Dial,
			Listener: l.listener.node.Label,
			Listen:   l.listen,
			Outwards: l.listener.parent,
		}
		i := slices.IndexFunc(out, func(o Crossing) bool {
			return o.Dest == c.Dest && o.Listener == c.Listener && o.Listen == c.Listen && o.Outwards == c.Outwards
		})
		if i < 0 {
			out = append(out, c)
			i = len(out) - 1
		}
		out[i].Dialers = append(out[i].Dialers, l.dialer.node.Label)
		out[i].Sources = append(out[i].Sources, l.dialer.link.Source)
	}
	slices.SortStableFunc(out, func(a, b Crossing) int {
		return cmp.Or(cmp.Compare(a.Port, b.Port), cmp.Compare(a.Listener, b.Listener), cmp.Compare(a.Dest, b.Dest))
	})
	return out, nil
}

// The formats of WriteFirewall.
const (
	FormatTable    = "table"    // a Markdown table, for people (README.md's)
	FormatNftables = "nftables" // nft rules to add to the inet filter table
	FormatIptables = "iptables" // iptables / ip6tables commands
)

// FirewallFormats are the formats WriteFirewall writes, the default first.
var FirewallFormats = []string{FormatTable, FormatNftables, FormatIptables}

// WriteFirewall writes the rules of cs to w in format (FirewallFormats).
func WriteFirewall(w io.Writer, cs []Crossing, format string) error {
	var b strings.Builder
	switch format {
	case FormatTable:
		writeTable(&b, cs)
	case FormatNftables:
		writeRules(&b, cs, nftRule, "#!/usr/sbin/nft -f",
			"(here chain forward of table\n"+
				"# inet filter, as nftables.conf has it), or on the listening node's own host\n"+
				"# in its input chain. Narrow a rule to the dialling node's address with\n"+
				"# \"ip saddr ADDR\", or pin it with the node's source key.")
	case FormatIptables:
		writeRules(&b, cs, iptablesRule, "#!/bin/sh",
			"(here chain FORWARD), or on\n"+
				"# the listening node's own host in chain INPUT. Narrow a rule to the dialling\n"+
				"# node's address with \"-s ADDR\", or pin it with the node's source key.")
	default:
		return fmt.Errorf("unknown format %q: want %s", format, strings.Join(FirewallFormats, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeTable writes the Markdown table of cs.
func writeTable(b *strings.Builder, cs []Crossing) {
	b.WriteString("| port | listener | dialled by | opened by | rule |\n")
	b.WriteString("|---|---|---|---|---|\n")
	for _, c := range cs {
		by := "the child"
		if c.Outwards {
			by = "the parent"
		}
		if len(c.Dialers) > 1 {
			by = map[bool]string{false: "the children", true: "the parents"}[c.Outwards]
		}
		var from []string
		for i, d := range c.Dialers {
			if src := c.source(i); src != "" {
				d += " (from " + src + ")"
			}
			from = append(from, d)
		}
		fmt.Fprintf(b, "| %d/tcp | %s (%s) | %s | %s | allow %s -> %s/tcp |\n",
			c.Port, c.Listener, c.Listen, strings.Join(c.Dialers, ", "), by, strings.Join(from, ", "), c.Dest)
	}
}

// source returns the source the i-th dialer pins, or "".
func (c Crossing) source(i int) string {
	if i < len(c.Sources) {
		return c.Sources[i]
	}
	return ""
}

// ruleSpec is one rule of a crossing: the dialers it admits and the
// source they pin (empty: any).
type ruleSpec struct {
	dialers []string
	srcIP   string
	srcPort string
}

// rules returns the rules of c: one for the dialers that pin no source,
// one for each source pinned, in the order of the dialers.
func (c Crossing) rules() []ruleSpec {
	var out []ruleSpec
	for i, d := range c.Dialers {
		var ip, port string
		if src := c.source(i); src != "" {
			ip = src
			if h, p, err := net.SplitHostPort(src); err == nil {
				ip, port = h, p
			}
		}
		j := slices.IndexFunc(out, func(r ruleSpec) bool { return r.srcIP == ip && r.srcPort == port })
		if j < 0 {
			out = append(out, ruleSpec{srcIP: ip, srcPort: port})
			j = len(out) - 1
		}
		out[j].dialers = append(out[j].dialers, d)
	}
	return out
}

// writeRules writes a header and the rules of each crossing, made by
// rule.
func writeRules(b *strings.Builder, cs []Crossing, rule func(c Crossing, r ruleSpec, host, comment string) string, shebang, where string) {
	n := 0
	for _, c := range cs {
		n += len(c.rules())
	}
	fmt.Fprintf(b, "%s\n# Firewall rules of the relay chain, made from its configurations: %d rules,\n"+
		"# one TCP port and one direction per crossing (and per source address a node\n"+
		"# pins). Each admits the connections that open a link; the link's traffic both\n"+
		"# ways then rides on its connection, which the rule set must let through (most\n"+
		"# do: related and established connections).\n"+
		"# For the firewall between the zones %s\n", shebang, n, where)
	for _, c := range cs {
		host, _, _ := net.SplitHostPort(c.Dest)
		for _, r := range c.rules() {
			comment := fmt.Sprintf("relaychain: %s -> %s", strings.Join(r.dialers, ","), c.Listener)
			b.WriteString(rule(c, r, host, comment))
			b.WriteByte('\n')
		}
	}
}

// isIPv6 reports whether host is an IPv6 address (a name counts as IPv4:
// the firewall tool resolves it).
func isIPv6(host string) bool {
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().Is6()
}

func nftRule(c Crossing, r ruleSpec, host, comment string) string {
	family := "ip"
	if isIPv6(host) || isIPv6(r.srcIP) {
		family = "ip6"
	}
	var src, sport string
	if r.srcIP != "" {
		src = fmt.Sprintf("%s saddr %s ", family, r.srcIP)
	}
	if r.srcPort != "" {
		sport = "tcp sport " + r.srcPort + " "
	}
	return fmt.Sprintf("add rule inet filter forward %s%s daddr %s %stcp dport %d ct state new accept comment %q",
		src, family, host, sport, c.Port, comment)
}

func iptablesRule(c Crossing, r ruleSpec, host, comment string) string {
	tool := "iptables"
	if isIPv6(host) || isIPv6(r.srcIP) {
		tool = "ip6tables"
	}
	var src, sport string
	if r.srcIP != "" {
		src = "-s " + r.srcIP + " "
	}
	if r.srcPort != "" {
		sport = "--sport " + r.srcPort + " "
	}
	return fmt.Sprintf("%s -A FORWARD -p tcp %s-d %s %s--dport %d -m conntrack --ctstate NEW -m comment --comment %q -j ACCEPT",
		tool, src, host, sport, c.Port, comment)
}
