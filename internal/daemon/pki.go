package daemon

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/relaychain/relaychain/internal/pki"
)

// pkiCommand is "NAME pki": the CA and the node certificates that links
// prove themselves with (see package pki).
//
//	NAME pki ca --out DIR [--days N] [--force]
//	NAME pki issue --ca DIR --label LABEL --out DIR [--days N] [--force]
func pkiCommand(name string) *cli.Command {
	force := &cli.BoolFlag{Name: "force", Usage: "replace existing files, keys included"}
	days := func(def int) cli.Flag {
		return &cli.IntFlag{Name: "days", Usage: "validity in `N` days", Value: def}
	}
	return &cli.Command{
		Name:  "pki",
		Usage: "make the CA and the node certificates for the links' mutual TLS",
		Subcommands: []*cli.Command{{
			Name:      "ca",
			Usage:     "create a CA: DIR/" + pki.CACertFile + " and DIR/" + pki.CAKeyFile + " (keep the key off the nodes)",
			UsageText: name + " pki ca --out DIR [--days N] [--force]",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "out", Usage: "the CA's `DIR`", Required: true},
				days(pki.DefaultCADays),
				force,
			},
			Action: func(c *cli.Context) error {
				if c.Args().Present() {
					return fmt.Errorf("unexpected argument %q (see --help)", c.Args().First())
				}
				w, err := pki.NewCA(c.String("out"), c.Int("days"), c.Bool("force"))
				if err != nil {
					return forceHint(err)
				}
				_, err = fmt.Fprintf(c.App.Writer,
					"wrote %s: CA certificate %q, valid until %s\nwrote %s: CA private key, mode 0600: keep it off the nodes\n",
					w.CertFile, w.Cert.Subject.CommonName, w.Cert.NotAfter.UTC().Format("2006-01-02"), w.KeyFile)
				return err
			},
		}, {
			Name:      "issue",
			Usage:     "issue a node's key and certificate into DIR: LABEL.key, LABEL.crt and a copy of " + pki.CACertFile,
			UsageText: name + " pki issue --ca DIR --label LABEL --out DIR [--days N] [--force]",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "ca", Usage: "the CA's `DIR`", Required: true},
				&cli.StringFlag{Name: "label", Usage: "the node's `LABEL`", Required: true},
				&cli.StringFlag{Name: "out", Usage: "the node's `DIR`", Required: true},
				days(pki.DefaultNodeDays),
				force,
			},
			Action: func(c *cli.Context) error {
				if c.Args().Present() {
					return fmt.Errorf("unexpected argument %q (see --help)", c.Args().First())
				}
				label := c.String("label")
				w, err := pki.Issue(c.String("ca"), label, c.String("out"), c.Int("days"), c.Bool("force"))
				if err != nil {
					return forceHint(err)
				}
				ca := "wrote %s: copy of the CA certificate\n"
				if w.CAKept {
					ca = "kept %s: it holds the CA certificate already\n"
				}
				_, err = fmt.Fprintf(c.App.Writer,
					"wrote %s: certificate of %s, valid until %s, pin %s\nwrote %s: private key, mode 0600\n"+ca,
					w.CertFile, label, w.Cert.NotAfter.UTC().Format("2006-01-02"), pki.FormatPin(pki.PinOf(w.Cert)),
					w.KeyFile, w.CAFile)
				return err
			},
		}},
	}
}

// forceHint adds how to replace a file to pki.ErrExists.
func forceHint(err error) error {
	if errors.Is(err, pki.ErrExists) {
		return fmt.Errorf("%w (--force replaces it)", err)
	}
	return err
}
