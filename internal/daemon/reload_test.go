package daemon

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

func TestFieldChanges(t *testing.T) {
	type inner struct {
		Timeout time.Duration `yaml:"timeout"`
	}
	type sample struct {
		Name   string `yaml:"name"`
		Size   int    `yaml:"size,omitempty"`
		NoTag  bool
		Inner  inner    `yaml:"inner"`
		List   []string `yaml:"list"`
		hidden int
	}
	a := sample{Name: "a", Size: 1, Inner: inner{time.Second}, List: []string{"x"}, hidden: 1}
	b := sample{Name: "", Size: 2, NoTag: true, Inner: inner{2 * time.Second}, List: []string{"x"}, hidden: 2}
	got := FieldChanges("top", a, b)
	want := []string{`top.name a -> ""`, "top.size 1 -> 2", "top.NoTag false -> true", "top.inner.timeout 1s -> 2s"}
	if !slices.Equal(got, want) {
		t.Errorf("FieldChanges:\n got %q\nwant %q", got, want)
	}
	if got := FieldChanges("top", a, a); len(got) != 0 {
		t.Errorf("FieldChanges of equal values: %q", got)
	}
}

// TestCLIApply sends SIGHUP to a daemon with Spec.Apply: a file with a
// problem is refused before Apply is called, each problem logged and the
// level kept; then Apply's error refuses the reload; then a good file
// with a new level, log file and format is applied, and the log goes on
// in the new file, as JSON.
func TestCLIApply(t *testing.T) {
	path, logFile := sampleWithLog(t, 3)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	newLog := filepath.Join(t.TempDir(), "relay2.log")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	applied := make(chan *sampleConfig, 1)
	refuse := errors.New("refused by the daemon")
	var applyErr error
	write := func(doc string) {
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Error(err)
		}
	}
	run := func(ctx context.Context, cfg *sampleConfig, log *logrus.Logger, lv *Level) error {
		defer cancel()
		write(string(good) + "bogus: 1\n")
		signalSelf(t, syscall.SIGHUP)
		waitFor(t, "the refusal", func() bool { return strings.Contains(readLog(t, logFile), "reload failed, level kept") })

		applyErr = refuse
		write(strings.Replace(string(good), "  level: 3\n", "  level: 2\n", 1))
		signalSelf(t, syscall.SIGHUP)
		select {
		case <-applied:
		case <-time.After(10 * time.Second):
			t.Error("Apply not called on SIGHUP")
			return nil
		}
		waitFor(t, "the refusal by Apply", func() bool { return strings.Contains(readLog(t, logFile), refuse.Error()) })
		if lv.Get() != 3 {
			t.Errorf("level %d after a refused reload, want 3", lv.Get())
		}

		applyErr = nil
		write(strings.Replace(string(good), "  level: 3\n  file: "+logFile+"\n", "  level: 2\n  file: "+newLog+"\n  format: json\n", 1))
		signalSelf(t, syscall.SIGHUP)
		select {
		case next := <-applied:
			if next.Log.File != newLog {
				t.Errorf("Apply given log file %q, want %q", next.Log.File, newLog)
			}
		case <-time.After(10 * time.Second):
			t.Error("Apply not called on SIGHUP")
			return nil
		}
		waitLevel(t, lv, 2)
		Component(log, "main").Warn("after the switch")
		return nil
	}
	apply := func(cfg, next *sampleConfig, log *logrus.Logger) error {
		applied <- next
		return applyErr
	}
	app := App(Spec[*sampleConfig]{Name: "relay", Load: loadSample, Run: run, Apply: apply})
	app.Writer, app.ErrWriter = &bytes.Buffer{}, &bytes.Buffer{}
	if err := app.RunContext(ctx, []string{"relay", "-c", path}); err != nil {
		t.Fatal(err)
	}
	old := readLog(t, logFile)
	for _, want := range []string{
		" 1 main: " + path + ":",
		"bogus: unknown key\n",
		" 1 log: reload failed, level kept [error=\"configuration refused, the one in force is kept: 1 problem in " + path + "\"]\n",
		" 1 log: reload failed, level kept [error=\"refused by the daemon\"]\n",
		" 3 main: log.file " + logFile + " -> " + newLog + "\n",
		" 3 main: log.format text -> json\n",
	} {
		if !strings.Contains(old, want) {
			t.Errorf("the first log lacks %q:\n%s", want, old)
		}
	}
	if strings.Contains(old, "after the switch") {
		t.Errorf("the first log goes on after the switch:\n%s", old)
	}
	got := readLog(t, newLog)
	for _, want := range []string{`"msg":"log output switched"`, `"msg":"level changed from 3 to 2"`, `"msg":"after the switch"`} {
		if !strings.Contains(got, want) {
			t.Errorf("the new log lacks %s:\n%s", want, got)
		}
	}
}

// waitFor polls cond for at most 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
