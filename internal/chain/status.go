package chain

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/relaychain/relaychain/internal/admin"
	"github.com/relaychain/relaychain/internal/daemon"
	"github.com/relaychain/relaychain/mux"
)

// statusCommand is "NAME status [--config FILE] [--json]": the running
// node's status, asked on its admin socket.
func statusCommand(k Kind) *cli.Command {
	name := k.Name
	return &cli.Command{
		Name:      "status",
		Usage:     "print the running node's status: links, routes, sessions, recent errors; at the root, --tree: the whole tree's",
		UsageText: name + " status [--config FILE] [--json] [--tree]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "configuration `FILE`", Value: "./" + name + ".yaml"},
			&cli.BoolFlag{Name: "json", Usage: "print the status as JSON"},
			&cli.BoolFlag{Name: "tree", Usage: "at the root: collect every node's status over the chain and print the tree"},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return fmt.Errorf("unexpected argument %q (see --help)", c.Args().First())
			}
			path := daemon.ConfigPath(c)
			cfg, err := LoadWith(k, path, LoadOptions{SkipTLSFiles: true})
			if err != nil {
				return daemon.ReportProblems(c.App.ErrWriter, path, err)
			}
			if c.Bool("tree") {
				return treeStatus(c, k, cfg)
			}
			st, err := admin.Query(cfg.AdminSocket(), 5*time.Second)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			return admin.WriteSummary(c.App.Writer, st)
		},
	}
}

// treeStatus is "NAME status --tree": the whole tree's status, collected
// by the running root over the chain. Every other node answers that only
// the root can show the tree.
func treeStatus(c *cli.Context, k Kind, cfg *Config) error {
	t, err := admin.QueryTree(cfg.AdminSocket(), admin.TreeTimeout)
	if err != nil {
		if k.Role != mux.RoleRoot && errors.Is(err, admin.ErrRemote) {
			return fmt.Errorf("status --tree: %w; run %s status --tree on the root", err, EPProxy.Name)
		}
		return fmt.Errorf("status --tree: %w", err)
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(t)
	}
	return admin.WriteTree(c.App.Writer, t)
}
