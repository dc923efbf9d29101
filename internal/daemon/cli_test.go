package daemon

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/internal/version"
)

type runFunc = func(ctx context.Context, cfg *sampleConfig, log *logrus.Logger, lv *Level) error

// runApp runs the sample daemon's command line with args and returns its
// standard output, standard error and error.
func runApp(t *testing.T, run runFunc, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	if run == nil {
		run = func(context.Context, *sampleConfig, *logrus.Logger, *Level) error {
			t.Error("Run called")
			return nil
		}
	}
	app := App(Spec[*sampleConfig]{Name: "relay", Usage: "test relay", Load: loadSample, Run: run})
	var out, errOut bytes.Buffer
	app.Writer, app.ErrWriter = &out, &errOut
	err = app.RunContext(context.Background(), append([]string{"relay"}, args...))
	return out.String(), errOut.String(), err
}

func TestCLIVersion(t *testing.T) {
	for _, flag := range []string{"-v", "--version"} {
		out, _, err := runApp(t, nil, flag)
		if err != nil {
			t.Fatal(err)
		}
		if want := version.String("relay") + "\n"; out != want {
			t.Fatalf("%s: got %q, want %q", flag, out, want)
		}
		if !strings.HasPrefix(out, "relay dev (commit ") {
			t.Fatalf("%s: %q", flag, out)
		}
	}
}

// sampleWithLog returns a good configuration that logs to a file at level.
func sampleWithLog(t *testing.T, level int) (path, logFile string) {
	t.Helper()
	logFile = filepath.Join(t.TempDir(), "relay.log")
	doc := strings.Replace(goodSample, "  level: 4\n  format: json\n",
		"  level: "+string(rune('0'+level))+"\n  file: "+logFile+"\n", 1)
	return writeFile(t, "relay.yaml", doc), logFile
}

func readLog(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCLICheckOK(t *testing.T) {
	path := writeFile(t, "relay.yaml", goodSample)
	for _, args := range [][]string{{"check", "--config", path}, {"check", "-c", path}, {"-c", path, "check"}} {
		out, errOut, err := runApp(t, nil, args...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if want := path + ": configuration OK\n"; out != want || errOut != "" {
			t.Fatalf("%v: stdout %q stderr %q", args, out, errOut)
		}
	}
}

func TestCLICheckDefaultPath(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "relay.yaml"), []byte(goodSample), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	out, _, err := runApp(t, nil, "check")
	if err != nil || out != "./relay.yaml: configuration OK\n" {
		t.Fatalf("got %q, %v", out, err)
	}
}

func TestCLICheckProblems(t *testing.T) {
	path := writeFile(t, "bad.yaml", "label: -x\nparents:\n  - dial: nowhere\nlog:\n  level: 9\n  colour: red\n")
	out, errOut, err := runApp(t, nil, "check", "--config", path)
	var le *LoadError
	if !errors.As(err, &le) || len(le.Problems) != 1 {
		t.Fatalf("got %#v", err)
	}
	// Strict decoding fails before Validate, so only the unknown key shows.
	if want := path + ":6: log.colour: unknown key\n"; errOut != want || out != "" {
		t.Fatalf("stderr %q, want %q (stdout %q)", errOut, want, out)
	}
	if err.Error() != "1 problem in "+path {
		t.Fatalf("summary %q", err)
	}

	path = writeFile(t, "bad2.yaml", "label: -x\nparents:\n  - dial: nowhere\nlog:\n  level: 9\n")
	_, errOut, err = runApp(t, nil, "check", "--config", path)
	want := []string{
		path + `:1: label: label "-x" must start with a letter or digit`,
		path + `:3: parents[0].dial: address "nowhere": missing port in address (want HOST:PORT, [IPv6]:PORT)`,
		path + `:5: log.level: must be 0..5, not 9`,
	}
	if got := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("stderr:\n%s\nwant:\n%s", errOut, strings.Join(want, "\n"))
	}
	if !errors.As(err, &le) || len(le.Problems) != 3 || err.Error() != "3 problems in "+path {
		t.Fatalf("got %v", err)
	}

	_, errOut, err = runApp(t, nil, "check", "--config", filepath.Join(t.TempDir(), "none.yaml"))
	if err == nil || !strings.Contains(errOut, "none.yaml: cannot read: no such file or directory") {
		t.Fatalf("missing file: %q, %v", errOut, err)
	}
}

func TestCLIRun(t *testing.T) {
	path, logFile := sampleWithLog(t, 3)
	called := false
	run := func(ctx context.Context, cfg *sampleConfig, log *logrus.Logger, lv *Level) error {
		called = true
		if cfg.Label != "relay-dmz1" || lv.Get() != 3 {
			t.Errorf("cfg %+v level %d", cfg, lv.Get())
		}
		Component(log, "relay").WithField("l", cfg.Label).Info("serving")
		return nil
	}
	if _, _, err := runApp(t, run, "--config", path); err != nil || !called {
		t.Fatalf("err %v called %v", err, called)
	}
	lines := strings.Split(strings.TrimSpace(readLog(t, logFile)), "\n")
	want := []string{
		" 3 main: starting [commit=unknown config=" + path + " level=3 version=dev]",
		" 3 relay: serving [l=relay-dmz1]",
		" 3 main: stopped",
	}
	if len(lines) != len(want) {
		t.Fatalf("log:\n%s", strings.Join(lines, "\n"))
	}
	for i := range want {
		if !strings.HasSuffix(lines[i], want[i]) {
			t.Errorf("line %d: %q, want suffix %q", i, lines[i], want[i])
		}
	}
}

func TestCLIRunError(t *testing.T) {
	path, logFile := sampleWithLog(t, 1)
	boom := errors.New("listen: address in use")
	run := func(context.Context, *sampleConfig, *logrus.Logger, *Level) error { return boom }
	if _, _, err := runApp(t, run, "--config", path); !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	if got, want := readLog(t, logFile), ` 1 main: stopped [error="listen: address in use"]`+"\n"; !strings.HasSuffix(got, want) || strings.Count(got, "\n") != 1 {
		t.Fatalf("log %q, want one line ending %q", got, want)
	}
}

func TestCLILogLevelOverride(t *testing.T) {
	path, logFile := sampleWithLog(t, 2)
	run := func(ctx context.Context, cfg *sampleConfig, log *logrus.Logger, lv *Level) error {
		if lv.Get() != 5 || log.GetLevel() != logrus.TraceLevel || cfg.Log.Level != 2 {
			t.Errorf("level %d, logger %v, file level %d", lv.Get(), log.GetLevel(), cfg.Log.Level)
		}
		log.Trace("deep")
		return nil
	}
	if _, _, err := runApp(t, run, "--log-level", "5", "-c", path); err != nil {
		t.Fatal(err)
	}
	if got := readLog(t, logFile); !strings.Contains(got, " 5 deep\n") || !strings.Contains(got, "level=5") {
		t.Fatalf("log %q", got)
	}

	for _, bad := range []string{"6", "-1", "x", ""} {
		_, _, err := runApp(t, nil, "--log-level", bad, "-c", path)
		if err == nil || !strings.Contains(err.Error(), "--log-level") {
			t.Errorf("--log-level %q: %v", bad, err)
		}
	}
	if _, _, err := runApp(t, nil, "-c", path, "extra"); err == nil {
		t.Error("extra argument accepted")
	}
}

// waitLevel waits until lv reaches n, failing after a deadline.
func waitLevel(t *testing.T, lv *Level, n int) {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for lv.Get() != n {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("level %d, want %d", lv.Get(), n)
		}
	}
}

func TestCLISignalsAndShutdown(t *testing.T) {
	path, logFile := sampleWithLog(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	run := func(ctx context.Context, cfg *sampleConfig, log *logrus.Logger, lv *Level) error {
		signalSelf(t, syscall.SIGUSR1)
		waitLevel(t, lv, 4)
		// SIGHUP re-reads the level from the file.
		doc := strings.Replace(readLog(t, path), "  level: 3\n", "  level: 1\n", 1)
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Error(err)
		}
		signalSelf(t, syscall.SIGHUP)
		waitLevel(t, lv, 1)
		cancel() // as SIGTERM would
		<-ctx.Done()
		return nil
	}
	app := App(Spec[*sampleConfig]{Name: "relay", Load: loadSample, Run: run})
	app.Writer, app.ErrWriter = &bytes.Buffer{}, &bytes.Buffer{}
	if err := app.RunContext(ctx, []string{"relay", "-c", path}); err != nil {
		t.Fatal(err)
	}
	got := readLog(t, logFile)
	for _, want := range []string{
		" 3 main: starting [",
		" 2 log: level changed from 3 to 4 [by=SIGUSR1]\n",
		" 2 log: level changed from 4 to 1 [by=SIGHUP]\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "main: stopped") {
		t.Errorf("info line printed at level 1:\n%s", got)
	}
}

func TestCLIReloadHook(t *testing.T) {
	path, logFile := sampleWithLog(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reloaded := make(chan *sampleConfig, 1)
	var running *sampleConfig
	run := func(ctx context.Context, cfg *sampleConfig, log *logrus.Logger, lv *Level) error {
		running = cfg
		doc := strings.Replace(readLog(t, path), "  level: 3\n", "  level: 2\n", 1)
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Error(err)
		}
		signalSelf(t, syscall.SIGHUP)
		select {
		case got := <-reloaded:
			if got != cfg {
				t.Error("Reload was not given the configuration Run runs with")
			}
		case <-time.After(10 * time.Second):
			t.Error("Reload not called on SIGHUP")
		}
		waitLevel(t, lv, 2) // the level is re-read as before
		cancel()
		<-ctx.Done()
		return nil
	}
	reload := func(cfg *sampleConfig, log *logrus.Logger) {
		Component(log, "tls").Info("certificate reloaded")
		reloaded <- cfg
	}
	app := App(Spec[*sampleConfig]{Name: "relay", Load: loadSample, Run: run, Reload: reload})
	app.Writer, app.ErrWriter = &bytes.Buffer{}, &bytes.Buffer{}
	if err := app.RunContext(ctx, []string{"relay", "-c", path}); err != nil {
		t.Fatal(err)
	}
	if running == nil {
		t.Fatal("Run not called")
	}
	got := readLog(t, logFile)
	i, j := strings.Index(got, " 3 tls: certificate reloaded\n"), strings.Index(got, " 2 log: level changed from 3 to 2 [by=SIGHUP]\n")
	if i < 0 || j < 0 || i > j {
		t.Errorf("log lacks the reload before the level change:\n%s", got)
	}
}
