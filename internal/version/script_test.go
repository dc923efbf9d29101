package version

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// gitRepo makes a git repository with one commit in a temporary directory,
// with scripts/version.sh copied into it, and returns a function that runs
// git there.
func gitRepo(t *testing.T) (dir string, git func(args ...string) string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed: scripts/version.sh not tested")
	}
	dir = t.TempDir()
	git = func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_SYSTEM=/dev/null",
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	script, err := os.ReadFile("../../scripts/version.sh")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "scripts"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "scripts", "version.sh"), script, 0o755); err != nil {
		t.Fatal(err)
	}
	git("init", "-q")
	git("add", ".")
	git("commit", "-q", "-m", "one")
	return dir, git
}

// runVersionScript runs scripts/version.sh in dir and returns its three fields.
func runVersionScript(t *testing.T, dir string) (ver, commit, date string) {
	t.Helper()
	cmd := exec.Command("scripts/version.sh")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_SYSTEM=/dev/null")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/version.sh: %v", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 3 || strings.Count(string(out), "\n") != 1 {
		t.Fatalf("scripts/version.sh printed %q, want one line VERSION COMMIT DATE", out)
	}
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`).MatchString(f[2]) {
		t.Errorf("date %q is not RFC 3339 UTC", f[2])
	}
	return f[0], f[1], f[2]
}

// TestVersionScript checks what scripts/version.sh (build.sh's stamp)
// gives in a checkout without a tag, with changes, on a tag and past it,
// and that the -v line built from it names the commit once.
func TestVersionScript(t *testing.T) {
	dir, git := gitRepo(t)
	head := git("rev-parse", "--short", "HEAD")

	check := func(state, wantVer, wantCommit string) {
		t.Helper()
		ver, commit, date := runVersionScript(t, dir)
		if ver != wantVer || commit != wantCommit {
			t.Errorf("%s: version %q, commit %q; want %q, %q", state, ver, commit, wantVer, wantCommit)
		}
		line := format("relay", ver, commit, date, nil)
		want := "relay " + wantVer + " (commit " + wantCommit + ", built " + date + ", "
		if !strings.HasPrefix(line, want) {
			t.Errorf("%s: -v line %q, want it to start with %q", state, line, want)
		}
		if n := strings.Count(line, head); n != 1 && !strings.Contains(wantVer, "-g") {
			t.Errorf("%s: -v line %q names the commit %d times", state, line, n)
		}
	}
	check("no tag", "dev", head)

	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git("add", "README")
	check("no tag, changed", "dev", head+"-dirty")
	git("commit", "-q", "-m", "two")
	head = git("rev-parse", "--short", "HEAD")

	git("tag", "-a", "-m", "v1.2.0", "v1.2.0")
	check("on a tag", "v1.2.0", head)

	git("commit", "-q", "--allow-empty", "-m", "three")
	head = git("rev-parse", "--short", "HEAD")
	check("past a tag", "v1.2.0-1-g"+head, head)
}
