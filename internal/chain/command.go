package chain

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/relaychain/relaychain/internal/daemon"
)

// chainCommand is "NAME chain": the configurations of a whole chain,
// checked together on an admin host (see Set).
//
//	NAME chain check DIR...                           exit 0 with a summary, or every problem and exit 1
//	NAME chain firewall [--format table|nftables|iptables] DIR...
//	NAME chain hash-password [--cost N] < FILE         print the bcrypt hash of the password read
func chainCommand(name string) *cli.Command {
	return &cli.Command{
		Name:  "chain",
		Usage: "check that the configurations of a whole chain agree, print the firewall rules they need",
		Description: "Each DIR is an instance folder holding one NAME.yaml (epproxy, relay, gwproxy,\n" +
			"eventsink), or a folder of them (configs/example). The TLS files the\n" +
			"configurations name are not read: they need not be on this host.",
		Subcommands: []*cli.Command{{
			Name:      "check",
			Usage:     "check that the configurations of a whole chain agree",
			UsageText: name + " chain check DIR...",
			Action: func(c *cli.Context) error {
				s, links, err := loadChain(c)
				if err != nil {
					return err
				}
				for _, w := range s.Warnings() {
					fmt.Fprintf(c.App.ErrWriter, "warning: %v\n", w)
				}
				_, err = fmt.Fprintf(c.App.Writer, "%s: %d nodes, %d links: the configurations agree\n",
					argsName(c.Args().Slice()), len(s.Nodes), links)
				return err
			},
		}, {
			Name:      "firewall",
			Usage:     "print the firewall rules of a whole chain: one port, one direction per crossing",
			UsageText: name + " chain firewall [--format " + strings.Join(FirewallFormats, "|") + "] DIR...",
			Flags: []cli.Flag{&cli.StringFlag{
				Name:  "format",
				Usage: "`FORMAT` of the rules: " + strings.Join(FirewallFormats, ", "),
				Value: FirewallFormats[0],
			}},
			Action: func(c *cli.Context) error {
				format := c.String("format")
				if !slices.Contains(FirewallFormats, format) {
					return fmt.Errorf("--format %q: want %s", format, strings.Join(FirewallFormats, ", "))
				}
				s, _, err := loadChain(c)
				if err != nil {
					return err
				}
				cs, err := s.Crossings()
				if err != nil {
					return err // checked by loadChain
				}
				return WriteFirewall(c.App.Writer, cs, format)
			},
		}, hashPasswordCommand(name)},
	}
}

// loadChain loads and checks the chain that the arguments name. Problems
// go to the app's ErrWriter, one per line, as "check" writes them, and
// come back as a *daemon.LoadError.
func loadChain(c *cli.Context) (*Set, int, error) {
	args := c.Args().Slice()
	if len(args) == 0 {
		return nil, 0, errors.New("no DIR given: name the instance folders of the chain, or the folder that holds them (see --help)")
	}
	what := argsName(args)
	s, err := LoadSet(args...)
	if err != nil {
		return nil, 0, daemon.ReportProblems(c.App.ErrWriter, what, err)
	}
	links, err := s.check()
	if err != nil {
		return nil, 0, daemon.ReportProblems(c.App.ErrWriter, what, err)
	}
	return s, len(links), nil
}

// argsName names the arguments in a summary line: "configs/example", or
// "relay-dmz1 and 5 more".
func argsName(args []string) string {
	switch len(args) {
	case 0:
		return ""
	case 1:
		return args[0]
	}
	return fmt.Sprintf("%s and %d more", args[0], len(args)-1)
}
