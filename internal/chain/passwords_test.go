package chain

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
	"golang.org/x/crypto/bcrypt"
)

// A user's password_hash goes to the entry as a hash, a clear password
// as it is, and check warns about the clear one with its file and line.
func TestLoadUserPasswordHash(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("hunter2"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	path := writeConfig(t, "gwproxy.yaml", fmt.Sprintf(`label: gwp-a
tls: {cert: a.crt, key: a.key, ca: ca.crt}
parents:
  - label: epp
    dial: 127.0.0.1:7000
entries:
  - name: up-socks
    listen: 127.0.0.1:9601
    kind: socks5
    dest: epp
    users:
      - {name: alice, password_hash: %q}
      - {name: ops, password: s3cret}
    rules: [{action: allow}]
`, hash))
	c, err := LoadWith(GWProxy, path, LoadOptions{SkipTLSFiles: true})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	ae := c.Entries[0].addrEntry()
	if ae.PasswordHashes["alice"] != string(hash) || len(ae.PasswordHashes) != 1 {
		t.Errorf("hashes: %v", ae.PasswordHashes)
	}
	if ae.Users["ops"] != "s3cret" || len(ae.Users) != 1 {
		t.Errorf("clear users: %v", ae.Users)
	}
	ws := c.Warnings()
	if len(ws) != 1 {
		t.Fatalf("warnings: %v; want one, for ops", ws)
	}
	want := path + ":13: entries[0].users[1].password: the password of user ops is in clear: write its password_hash instead (gwproxy chain hash-password)"
	if ws[0].Error() != want {
		t.Errorf("warning:\n %s\nwant\n %s", ws[0], want)
	}
}

func TestLoadUserPasswordHashRejects(t *testing.T) {
	path := writeConfig(t, "gwproxy.yaml", `label: gwp-a
tls: {cert: a.crt, key: a.key, ca: ca.crt}
parents:
  - label: epp
    dial: 127.0.0.1:7000
entries:
  - name: up-socks
    listen: 127.0.0.1:9601
    kind: socks5
    dest: epp
    users:
      - {name: a, password_hash: "hunter2"}
      - {name: b, password: x, password_hash: "$2a$04$abcdefghijklmnopqrstuu5hVHHqlyRC2NyjZJb3xM3drPN4FgIzG"}
      - {name: c}
    rules: [{action: allow}]
`)
	_, err := LoadWith(GWProxy, path, LoadOptions{SkipTLSFiles: true})
	checkProblems(t, path, err, []problem{
		{12, "entries[0].users[0].password_hash", "not a bcrypt hash"},
		{13, "entries[0].users[1].password_hash", "not both"},
		{14, "entries[0].users[2].password", "or a password_hash"},
	})
}

// "chain hash-password" hashes the first line of its input, which the
// hash then matches, and refuses an empty or too long password.
func TestHashPasswordCommand(t *testing.T) {
	run := func(in string, args ...string) (string, error) {
		var out bytes.Buffer
		app := &cli.App{Name: "relay", Reader: strings.NewReader(in), Writer: &out, ErrWriter: &out,
			Commands: []*cli.Command{chainCommand("relay")}}
		err := app.Run(append([]string{"relay", "chain", "hash-password"}, args...))
		return out.String(), err
	}
	out, err := run("correct horse\r\nignored\n", "--cost", "4")
	if err != nil {
		t.Fatalf("hash-password: %v", err)
	}
	hash := strings.TrimSuffix(out, "\n")
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte("correct horse")) != nil {
		t.Fatalf("the hash %q does not match the password", hash)
	}
	if cost, err := bcrypt.Cost([]byte(hash)); err != nil || cost != 4 {
		t.Errorf("cost %d, %v; want 4", cost, err)
	}
	for _, c := range []struct{ in, want string }{
		{"", "no password"},
		{"\n", "no password"},
		{strings.Repeat("x", 73), "at most 72"},
	} {
		if _, err := run(c.in, "--cost", "4"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("input %q: %v; want %q", c.in, err, c.want)
		}
	}
	if _, err := run("x", "--cost", "99"); err == nil || !strings.Contains(err.Error(), "--cost 99") {
		t.Errorf("cost 99: %v", err)
	}
}

// "chain check" agrees on a chain whose entry has a clear password, and
// warns about it on its error output.
func TestChainCheckWarnsClearPassword(t *testing.T) {
	dir := writeChain(t, smallChain, map[string][]string{
		"epp/epproxy.yaml": {"entries:\n", "entries:\n  - name: socks\n    listen: 127.0.0.1:1080\n    kind: socks5\n    users: [{name: ops, password: s3cret}]\n    rules: [{action: allow}]\n",
			"dial: 10.0.1.2:7101\n", "dial: 10.0.1.2:7101\n    accept_networks: any\n"},
		"gwp/gwproxy.yaml": {"services:\n", "serves: [10.20.0.0/16]\nservices:\n"},
		"r1/relay.yaml":    {"listen: 0.0.0.0:7103\n", "listen: 0.0.0.0:7103\n    accept_networks: any\n"},
	})
	var out, errOut bytes.Buffer
	app := &cli.App{Name: "relay", Writer: &out, ErrWriter: &errOut, Commands: []*cli.Command{chainCommand("relay")}}
	if err := app.Run([]string{"relay", "chain", "check", dir}); err != nil {
		t.Fatalf("chain check: %v (%s)", err, errOut.String())
	}
	if !strings.HasSuffix(out.String(), ": the configurations agree\n") {
		t.Errorf("stdout %q", out.String())
	}
	want := "warning: " + dir + "/epp/epproxy.yaml:15: entries[0].users[0].password: the password of user ops is in clear"
	if !strings.HasPrefix(errOut.String(), want) || strings.Count(errOut.String(), "\n") != 1 {
		t.Errorf("stderr %q; want one line beginning %q", errOut.String(), want)
	}
}
