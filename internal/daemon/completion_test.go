package daemon

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// withArgs sets os.Args to args for the rest of the test: the CLI
// library's completion reads the last word typed from os.Args, not from
// the arguments given to Run.
func withArgs(t *testing.T, args []string) {
	t.Helper()
	prev := os.Args
	os.Args = args
	t.Cleanup(func() { os.Args = prev })
}

// TestCompletionCandidates asks the app what may come next, as the bash
// script does: the commands, then a command's subcommands; nothing where a
// file is wanted (bash then completes file names).
func TestCompletionCandidates(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "check\npki\ncompletion\n"},
		{[]string{"pki"}, "ca\nissue\n"},
		{[]string{"check"}, ""},
		{[]string{"pki", "ca"}, ""},
	} {
		args := append(tc.args, "--generate-bash-completion")
		withArgs(t, append([]string{"relay"}, args...))
		out, errOut, err := runApp(t, nil, args...)
		if err != nil || out != tc.want || errOut != "" {
			t.Errorf("relay %s --generate-bash-completion: stdout %q, stderr %q, err %v; want %q",
				strings.Join(tc.args, " "), out, errOut, err, tc.want)
		}
	}
}

// A daemon's own commands (Spec.Commands) are offered too.
func TestCompletionSpecCommands(t *testing.T) {
	app := App(Spec[*sampleConfig]{Name: "relay", Load: loadSample, Commands: []*cli.Command{{
		Name:        "chain",
		Subcommands: []*cli.Command{{Name: "check"}, {Name: "firewall"}},
	}}})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "check\npki\nchain\ncompletion\n"},
		{[]string{"chain"}, "check\nfirewall\n"},
	} {
		var out bytes.Buffer
		app.Writer = &out
		args := append(append([]string{"relay"}, tc.args...), "--generate-bash-completion")
		withArgs(t, args)
		if err := app.RunContext(context.Background(), args); err != nil {
			t.Fatal(err)
		}
		if out.String() != tc.want {
			t.Errorf("relay %s: %q, want %q", strings.Join(tc.args, " "), out.String(), tc.want)
		}
	}
}

func TestCompletionCommand(t *testing.T) {
	for _, args := range [][]string{{"completion"}, {"completion", "bash"}} {
		out, errOut, err := runApp(t, nil, args...)
		if err != nil || out != BashCompletion("relay") || errOut != "" {
			t.Errorf("relay %s: stdout %q, stderr %q, err %v", strings.Join(args, " "), out, errOut, err)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"completion", "zsh"}, `completion for "zsh": only bash is supported`},
		{[]string{"completion", "bash", "x"}, `unexpected argument "x" (see --help)`},
	} {
		out, _, err := runApp(t, nil, tc.args...)
		if err == nil || err.Error() != tc.want || out != "" {
			t.Errorf("relay %s: stdout %q, err %v; want error %q", strings.Join(tc.args, " "), out, err, tc.want)
		}
	}
}

func TestBashCompletionScript(t *testing.T) {
	s := BashCompletion("my-daemon")
	for _, want := range []string{
		"\n_my_daemon_complete() {\n",
		`opts="$("${COMP_WORDS[0]}" "${words[@]}" --generate-bash-completion 2>/dev/null)"`,
		"\ncomplete -o bashdefault -o default -F _my_daemon_complete my-daemon\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q:\n%s", want, s)
		}
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed: the script's syntax is not checked")
	}
	cmd := exec.Command(bash, "-n")
	cmd.Stdin = strings.NewReader(s)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
}

// TestCompletionFlags: after a "-", a command's flags, those not given yet.
func TestCompletionFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-"}, "--config\n-c\n--log-level\n--version\n-v\n--help\n-h\n"},
		{[]string{"pki", "ca", "--out", "x", "-"}, "--days\n--force\n--help\n-h\n"},
	} {
		args := append(tc.args, "--generate-bash-completion")
		withArgs(t, append([]string{"relay"}, args...))
		out, errOut, err := runApp(t, nil, args...)
		if err != nil || out != tc.want || errOut != "" {
			t.Errorf("relay %s: stdout %q, stderr %q, err %v; want %q", strings.Join(args, " "), out, errOut, err, tc.want)
		}
	}
}
