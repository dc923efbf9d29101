package e2e

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// run runs bin with args in dir and returns its stdout, stderr and exit
// status.
func run(t testing.TB, dir, bin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%s %s: still running after 30s", bin, strings.Join(args, " "))
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %s: %v", bin, strings.Join(args, " "), err)
	}
	return stdout.String(), stderr.String(), code
}

// builtDaemons are the daemons whose binaries were built (eventsink only
// once it has a main package).
func builtDaemons(t testing.TB) []string {
	t.Helper()
	out := append([]string(nil), daemons...)
	if _, err := os.Stat(binPath(t, "eventsink")); err == nil {
		out = append(out, "eventsink")
	}
	return out
}

// TestVersion checks -v and --version of every daemon: one line with the
// daemon's name and the version stamped at build time, exit status 0.
func TestVersion(t *testing.T) {
	for _, d := range builtDaemons(t) {
		for _, flag := range []string{"-v", "--version"} {
			t.Run(d+" "+flag, func(t *testing.T) {
				t.Parallel()
				stdout, stderr, code := run(t, t.TempDir(), binPath(t, d), flag)
				want := regexp.QuoteMeta(d+" "+stampVersion+" (commit "+stampCommit+", built "+stampDate+", ") +
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
	root := moduleRoot(t)
	example, _ := copyExample(t, nil, nil)
	var good []struct{ daemon, path string }
	for _, d := range daemons {
		good = append(good, struct{ daemon, path string }{d, filepath.Join(root, "configs", d+".yaml")})
	}
	for _, n := range exampleNodes {
		good = append(good, struct{ daemon, path string }{n.daemon, filepath.Join(example, n.name, n.daemon+".yaml")})
	}
	for _, g := range good {
		t.Run("good "+g.daemon+" "+filepath.Base(filepath.Dir(g.path)), func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := run(t, t.TempDir(), binPath(t, g.daemon), "check", "--config", g.path)
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
	for _, d := range daemons {
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
			stdout, stderr, code := run(t, t.TempDir(), binPath(t, b.daemon), "check", "--config", b.path)
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
