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
				"# \"ip saddr ADDR\".")
	case FormatIptables:
		writeRules(&b, cs, iptablesRule, "#!/bin/sh",
			"(here chain FORWARD), or on\n"+
				"# the listening node's own host in chain INPUT. Narrow a rule to the dialling\n"+
				"# node's address with \"-s ADDR\".")
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
		dialers := strings.Join(c.Dialers, ", ")
		fmt.Fprintf(b, "| %d/tcp | %s (%s) | %s | %s | allow %s -> %s/tcp |\n",
			c.Port, c.Listener, c.Listen, dialers, by, dialers, c.Dest)
	}
}

// writeRules writes a header and one rule per crossing, made by rule.
func writeRules(b *strings.Builder, cs []Crossing, rule func(c Crossing, host, comment string) string, shebang, where string) {
	fmt.Fprintf(b, "%s\n# Firewall rules of the relay chain, made from its configurations: %d rules,\n"+
		"# one TCP port and one direction per crossing. Each admits the connections that\n"+
		"# open a link; the link's traffic both ways then rides on its connection, which\n"+
		"# the rule set must let through (most do: related and established connections).\n"+
		"# For the firewall between the zones %s\n", shebang, len(cs), where)
	for _, c := range cs {
		host, _, _ := net.SplitHostPort(c.Dest)
		comment := fmt.Sprintf("relaychain: %s -> %s", strings.Join(c.Dialers, ","), c.Listener)
		b.WriteString(rule(c, host, comment))
		b.WriteByte('\n')
	}
}

// isIPv6 reports whether host is an IPv6 address (a name counts as IPv4:
// the firewall tool resolves it).
func isIPv6(host string) bool {
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().Is6()
}

func nftRule(c Crossing, host, comment string) string {
	family := "ip"
	if isIPv6(host) {
		family = "ip6"
	}
	return fmt.Sprintf("add rule inet filter forward %s daddr %s tcp dport %d ct state new accept comment %q",
		family, host, c.Port, comment)
}

func iptablesRule(c Crossing, host, comment string) string {
	tool := "iptables"
	if isIPv6(host) {
		tool = "ip6tables"
	}
	return fmt.Sprintf("%s -A FORWARD -p tcp -d %s --dport %d -m conntrack --ctstate NEW -m comment --comment %q -j ACCEPT",
		tool, host, c.Port, comment)
}
