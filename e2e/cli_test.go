package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/relaychain/relaychain/e2e/e2etest"
)

// checkedDaemons are the daemons whose samples in configs/ and broken
// files in testdata/ TestCheck runs "check" on.
var checkedDaemons = []string{"epproxy", "gwproxy", "relay"}

// TestVersion checks -v and --version of every daemon: one line with the
// daemon's name and the version stamped at build time, exit status 0.
func TestVersion(t *testing.T) {
	for _, d := range e2etest.Daemons {
		for _, flag := range []string{"-v", "--version"} {
			t.Run(d+" "+flag, func(t *testing.T) {
				t.Parallel()
				stdout, stderr, code := e2etest.RunCommand(t, t.TempDir(), e2etest.Bin(t, d), flag)
				want := regexp.QuoteMeta(d+" "+e2etest.Version+" (commit "+e2etest.Commit+", built "+e2etest.Date+", ") +
					regexp.QuoteMeta(runtime.Version()) + ` \S+/\S+\)\n$`
				if code != 0 || stderr != "" || strings.Count(stdout, "\n") != 1 || !regexp.MustCompile("^"+want).MatchString(stdout) {
					t.Fatalf("exit %d, stdout %q, stderr %q; want one line matching %s", code, stdout, stderr, want)
				}
			})
		}
	}
}

// TestCheck runs "check --config" on good configurations (the commented
// samples of configs/ and the example chain), which pass with
// "FILE: configuration OK", and on broken ones, which fail with every
// problem on its own FILE:LINE: KEY: line.
func TestCheck(t *testing.T) {
	root := e2etest.ModuleRoot(t)
	example := e2etest.NewChain(t, e2etest.Options{}).Dir
	var good []struct{ daemon, path string }
	// The samples name their certificates beside them: check copies, with
	// the certificates made by each daemon's own "pki" commands.
	samples := t.TempDir()
	caDir := filepath.Join(samples, "ca")
	if _, errOut, code := e2etest.RunCommand(t, samples, e2etest.Bin(t, "relay"), "pki", "ca", "--out", caDir); code != 0 {
		t.Fatalf("pki ca: exit %d: %s", code, errOut)
	}
	for _, d := range checkedDaemons {
		b, err := os.ReadFile(filepath.Join(root, "configs", d+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		path := filepath.Join(samples, d+".yaml")
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		label := regexp.MustCompile(`(?m)^label: (\S+)`).FindStringSubmatch(text)
		if label == nil {
			t.Fatalf("configs/%s.yaml has no label", d)
		}
		if _, errOut, code := e2etest.RunCommand(t, samples, e2etest.Bin(t, d), "pki", "issue", "--ca", caDir, "--label", label[1], "--out", samples); code != 0 {
			t.Fatalf("%s pki issue: exit %d: %s", d, code, errOut)
		}
		good = append(good, struct{ daemon, path string }{d, path})
	}
	for _, n := range e2etest.SessionNodes {
		good = append(good, struct{ daemon, path string }{n.Daemon, filepath.Join(example, n.Name, n.Daemon+".yaml")})
	}
	for _, g := range good {
		t.Run("good "+g.daemon+" "+filepath.Base(filepath.Dir(g.path)), func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := e2etest.RunCommand(t, t.TempDir(), e2etest.Bin(t, g.daemon), "check", "--config", g.path)
			if code != 0 || stdout != g.path+": configuration OK\n" || stderr != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
			}
		})
	}

	testdata, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	decode := filepath.Join(testdata, "broken-decode.yaml")
	validate := filepath.Join(testdata, "broken-validate.yaml")
	bad := []struct {
		daemon, path string
		want         []string // FILE:LINE: KEY: message, in order
	}{
		{"relay", validate, []string{
			validate + `:3: label: label "-relay" must start with a letter or digit`,
			validate + `:5: parents[0]: link to epp-main sets both dial and listen; choose one`,
			validate + `:10: children[0]: link to relay-dmz2 has no direction: .+`,
			validate + `:12: shutdown_grace: must not be negative`,
		}},
	}
	for _, d := range checkedDaemons {
		bad = append(bad, struct {
			daemon, path string
			want         []string
		}{d, decode, []string{
			decode + `:6: log.colour: unknown key`,
			decode + `:11: tuning.keepalive_interval: duration 10 has no unit: .+`,
			decode + `:12: tuning.write_timeout: invalid duration .+`,
		}})
	}
	for _, b := range bad {
		t.Run("bad "+b.daemon+" "+filepath.Base(b.path), func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := e2etest.RunCommand(t, t.TempDir(), e2etest.Bin(t, b.daemon), "check", "--config", b.path)
			if code == 0 || strings.Contains(stdout, "configuration OK") {
				t.Fatalf("exit %d, stdout %q: want a failure", code, stdout)
			}
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if len(lines) != len(b.want)+1 {
				t.Fatalf("stderr has %d lines, want %d problems and a summary:\n%s", len(lines), len(b.want), stderr)
			}
			for i, w := range b.want {
				// The literal parts of the expectation, then ".+" for the rest.
				lit, rest, wild := strings.Cut(w, ".+")
				re := "^" + regexp.QuoteMeta(lit)
				if wild {
					re += ".+" + regexp.QuoteMeta(rest)
				}
				if !regexp.MustCompile(re + "$").MatchString(lines[i]) {
					t.Errorf("line %d: %q, want %q", i+1, lines[i], w)
				}
			}
			summary := regexp.MustCompile(`^` + b.daemon + `: \d+ problems? in ` + regexp.QuoteMeta(b.path) + `$`)
			if !summary.MatchString(lines[len(lines)-1]) {
				t.Errorf("last line %q, want %s", lines[len(lines)-1], summary)
			}
		})
	}
}

// TestCompletion sources the script that "NAME completion" prints into
// bash and completes command lines with it, as a shell would, the
// candidates coming from the real binary.
func TestCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	binDir := e2etest.BinDir(t)
	for _, d := range e2etest.Daemons {
		for _, tc := range []struct {
			words []string // the last one is being completed
			want  string
		}{
			{[]string{d, ""}, "check pki chain status upgrade completion"},
			{[]string{d, "ch"}, "check chain"},
			{[]string{d, "chain", ""}, "check firewall hash-password"},
			{[]string{d, "chain", "firewall", "--f"}, "--format"},
			{[]string{d, "pki", "issue", "--ca", "ca", "--"}, "--label --out --days --force --help"},
			{[]string{d, "--"}, "--config --log-level --version --help"},
		} {
			t.Run(strings.Join(tc.words, " "), func(t *testing.T) {
				t.Parallel()
				script := fmt.Sprintf(`source <(%s completion) || exit 1
COMP_WORDS=(%s)
COMP_CWORD=%d
_%s_complete
echo "${COMPREPLY[*]}"`, d, quoteWords(tc.words), len(tc.words)-1, d)
				cmd := exec.Command(bash, "--norc", "--noprofile", "-c", script)
				cmd.Env = append(os.Environ(), "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"))
				out, err := cmd.CombinedOutput()
				if err != nil || string(out) != tc.want+"\n" {
					t.Fatalf("completing %q: %v, got %q, want %q", tc.words, err, out, tc.want)
				}
			})
		}
	}
}

// quoteWords quotes words for a bash array.
func quoteWords(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
