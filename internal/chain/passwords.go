package chain

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/crypto/bcrypt"
)

// This file is the passwords of the users of socks5 and http_connect
// entries: the warning about one written in clear, and "NAME chain
// hash-password", which makes the bcrypt hash to write instead.

// Warnings lists what in c is allowed but unwise, each naming its file,
// line and key: a user's password written in clear.
func (c *Config) Warnings() []error {
	var out []error
	for i, e := range c.Entries {
		for j, u := range e.Users {
			if u.Password == "" {
				continue
			}
			key := fmt.Sprintf("entries[%d].users[%d].password", i, j)
			out = append(out, c.pos.Errorf(key, "the password of user %s is in clear: write its password_hash instead (%s chain hash-password)", u.Name, c.kind.Name))
		}
	}
	return append(out, c.acceptOverlaps()...)
}

// Warnings lists the warnings of every configuration of the chain.
func (s *Set) Warnings() []error {
	var out []error
	for _, c := range s.Nodes {
		out = append(out, c.Warnings()...)
	}
	return out
}

// maxPassword is the longest password bcrypt takes, in bytes.
const maxPassword = 72

// hashPasswordCommand is "NAME chain hash-password": it reads one
// password from standard input (its first line, without the line end) and
// prints its bcrypt hash, for a user's password_hash.
func hashPasswordCommand(name string) *cli.Command {
	return &cli.Command{
		Name:      "hash-password",
		Usage:     "read a password on standard input, print its bcrypt hash for a user's password_hash",
		UsageText: name + " chain hash-password [--cost N] < FILE",
		Description: "The first line of standard input is the password (1 to 72 bytes; the line end is\n" +
			"not part of it). Nothing is echoed; the hash is printed on standard output.",
		Flags: []cli.Flag{&cli.IntFlag{
			Name:  "cost",
			Usage: fmt.Sprintf("bcrypt `COST`, %d to %d: each step doubles the time a check takes", bcrypt.MinCost, bcrypt.MaxCost),
			Value: bcrypt.DefaultCost,
		}},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return fmt.Errorf("unexpected argument %q: the password is read on standard input", c.Args().First())
			}
			cost := c.Int("cost")
			if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
				return fmt.Errorf("--cost %d: want %d to %d", cost, bcrypt.MinCost, bcrypt.MaxCost)
			}
			pass, err := readPassword(c.App.Reader)
			if err != nil {
				return err
			}
			h, err := bcrypt.GenerateFromPassword([]byte(pass), cost)
			if err != nil {
				return fmt.Errorf("hash the password: %w", err)
			}
			_, err = fmt.Fprintf(c.App.Writer, "%s\n", h)
			return err
		},
	}
}

// readPassword reads the first line of r, without its line end.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the password: %w", err)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	switch {
	case line == "":
		return "", errors.New("no password on standard input")
	case len(line) > maxPassword:
		return "", fmt.Errorf("the password is %d bytes long: bcrypt takes at most %d", len(line), maxPassword)
	}
	return line, nil
}
