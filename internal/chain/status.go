package chain

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/relaychain/relaychain/internal/admin"
	"github.com/relaychain/relaychain/internal/daemon"
)

// statusCommand is "NAME status [--config FILE] [--json]": the running
// node's status, asked on its admin socket.
func statusCommand(k Kind) *cli.Command {
	name := k.Name
	return &cli.Command{
		Name:      "status",
		Usage:     "print the running node's status: links, routes, sessions, recent errors",
		UsageText: name + " status [--config FILE] [--json]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "configuration `FILE`", Value: "./" + name + ".yaml"},
			&cli.BoolFlag{Name: "json", Usage: "print the status as JSON"},
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
