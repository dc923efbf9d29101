package daemon

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

var fixedTime = time.Date(2026, 11, 21, 10, 4, 5, 123_000_000, time.UTC)

func entry(level logrus.Level, msg string, fields logrus.Fields) *logrus.Entry {
	return &logrus.Entry{Time: fixedTime, Level: level, Message: msg, Data: fields}
}

func TestTextFormatter(t *testing.T) {
	cases := []struct {
		name string
		e    *logrus.Entry
		want string
	}{
		{"classic", entry(logrus.InfoLevel, "WHO command received", logrus.Fields{"component": "routing", "l": "relay-dmz1"}),
			"26/11/21 10:04:05.123 3 routing: WHO command received [l=relay-dmz1]\n"},
		{"no component no fields", entry(logrus.WarnLevel, "plain", nil),
			"26/11/21 10:04:05.123 2 plain\n"},
		{"sorted and quoted", entry(logrus.DebugLevel, "x", logrus.Fields{
			"component": "mux", "zeta": 1, "alpha": "two words", "err": errors.New(`bad "thing"`), "empty": "", "eq": "a=b",
		}), `26/11/21 10:04:05.123 4 mux: x [alpha="two words" empty="" eq="a=b" err="bad \"thing\"" zeta=1]` + "\n"},
		{"error level", entry(logrus.ErrorLevel, "boom\n", logrus.Fields{"component": "main"}),
			"26/11/21 10:04:05.123 1 main: boom\n"},
		{"trace", entry(logrus.TraceLevel, "t", logrus.Fields{"d": 1500 * time.Millisecond}),
			"26/11/21 10:04:05.123 5 t [d=1.5s]\n"},
		{"panic counts as error", entry(logrus.PanicLevel, "p", nil),
			"26/11/21 10:04:05.123 1 p\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := TextFormatter{}.Format(tc.e)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Fatalf("got  %q\nwant %q", b, tc.want)
			}
		})
	}
}

func TestJSONFormatter(t *testing.T) {
	e := entry(logrus.InfoLevel, "TELL command received", logrus.Fields{
		"component": "routing", "l": "gwp-dmz2", "err": errors.New("x"), "n": 3,
	})
	b, err := JSONFormatter{}.Format(e)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(b), "}\n") || strings.Count(string(b), "\n") != 1 {
		t.Fatalf("not one line: %q", b)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"time": "2026-11-21T10:04:05.123Z", "level": 3.0, "component": "routing", "msg": "TELL command received",
		"fields": map[string]any{"l": "gwp-dmz2", "err": "x", "n": 3.0},
	}
	if gs, ws := mustJSON(t, got), mustJSON(t, want); gs != ws {
		t.Fatalf("got  %s\nwant %s", gs, ws)
	}

	b, err = JSONFormatter{}.Format(entry(logrus.WarnLevel, "bare", nil))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"time":"2026-11-21T10:04:05.123Z","level":2,"msg":"bare"}` + "\n"; string(b) != want {
		t.Fatalf("got %q, want %q", b, want)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLevelMapping(t *testing.T) {
	for n := 0; n <= MaxLevel; n++ {
		if got := NumericLevel(LogrusLevel(n)); got != n {
			t.Errorf("NumericLevel(LogrusLevel(%d)) = %d", n, got)
		}
	}
	if LogrusLevel(9) != logrus.TraceLevel || LogrusLevel(-1) != logrus.PanicLevel {
		t.Error("out of range levels not clamped")
	}
	if NumericLevel(logrus.FatalLevel) != 1 {
		t.Error("fatal threshold should be 1")
	}
}

// newTestLogger returns a logger at level n writing to a buffer.
func newTestLogger(t *testing.T, format string, n int) (*logrus.Logger, *syncBuffer) {
	t.Helper()
	cfg := DefaultLogConfig()
	cfg.Format = format
	cfg.Level = n
	logger, closer, err := NewLogger(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = closer.Close() })
	buf := &syncBuffer{}
	logger.Out = &lockedWriter{w: buf}
	return logger, buf
}

func logAll(logger *logrus.Logger) {
	l := Component(logger, "test")
	l.Error("e")
	l.Warn("w")
	l.Info("i")
	l.Debug("d")
	l.Trace("t")
	l.WithField("k", "v").Print("p")
}

func TestLevelZeroIsSilent(t *testing.T) {
	for _, format := range []string{FormatText, FormatJSON} {
		logger, buf := newTestLogger(t, format, 0)
		logAll(logger)
		if got := buf.String(); got != "" {
			t.Errorf("%s: level 0 printed %q", format, got)
		}
	}
}

func TestLevelsFilter(t *testing.T) {
	for n := 1; n <= MaxLevel; n++ {
		logger, buf := newTestLogger(t, FormatText, n)
		logAll(logger)
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		want := n
		if n >= LevelInfo {
			want++ // Print is Info
		}
		if len(lines) != want {
			t.Errorf("level %d: %d lines, want %d: %q", n, len(lines), want, lines)
		}
		for _, l := range lines {
			if lv := int(l[len("06/01/02 15:04:05.000 ")] - '0'); lv > n {
				t.Errorf("level %d printed %q", n, l)
			}
		}
	}
}

func TestLevelNotices(t *testing.T) {
	logger, buf := newTestLogger(t, FormatText, 3)
	lv := NewLevel(logger, 3)
	if buf.String() != "" {
		t.Fatalf("NewLevel wrote %q", buf.String())
	}
	steps := []struct {
		do   func() int
		want int
		line string
	}{
		{func() int { return lv.Raise("SIGUSR1") }, 4, " 2 log: level changed from 3 to 4 [by=SIGUSR1]"},
		{func() int { return lv.Raise("SIGUSR1") }, 5, " 2 log: level changed from 4 to 5 [by=SIGUSR1]"},
		{func() int { return lv.Raise("SIGUSR1") }, 5, " 2 log: level stays 5 [by=SIGUSR1]"},
		{func() int { lv.Set(1, "test"); return lv.Get() }, 1, " 2 log: level changed from 5 to 1 [by=test]"},
		{func() int { return lv.Lower("SIGUSR2") }, 0, " 2 log: level changed from 1 to 0 [by=SIGUSR2]"},
		{func() int { return lv.Lower("SIGUSR2") }, 0, " 2 log: level stays 0 [by=SIGUSR2]"},
	}
	for i, st := range steps {
		before := len(buf.String())
		if got := st.do(); got != st.want {
			t.Fatalf("step %d: level %d, want %d", i, got, st.want)
		}
		if lv.Get() != st.want || logger.GetLevel() != LogrusLevel(st.want) {
			t.Fatalf("step %d: Get %d, logger %v", i, lv.Get(), logger.GetLevel())
		}
		line := buf.String()[before:]
		if !strings.HasSuffix(line, st.line+"\n") || strings.Count(line, "\n") != 1 {
			t.Fatalf("step %d: notice %q, want suffix %q", i, line, st.line)
		}
	}
	// At 0, nothing but notices.
	before := len(buf.String())
	logAll(logger)
	if got := buf.String()[before:]; got != "" {
		t.Fatalf("level 0 printed %q", got)
	}
}

func TestNewLoggerRotates(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "sub", "relay.log")
	cfg := DefaultLogConfig()
	cfg.File = file
	cfg.MaxSizeMB = 1
	cfg.MaxBackups = 2
	logger, closer, err := NewLogger(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("log file not created at once: %v", err)
	}
	log := Component(logger, "bulk")
	pad := strings.Repeat("x", 1000)
	for i := 0; i < 1500; i++ { // about 1.5 MB
		log.WithField("i", i).Info(pad)
	}
	if err := closer.Close(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Dir(file))
	if err != nil {
		t.Fatal(err)
	}
	var backups []string
	for _, e := range entries {
		if e.Name() != "relay.log" && strings.HasPrefix(e.Name(), "relay-") && strings.HasSuffix(e.Name(), ".log") {
			backups = append(backups, e.Name())
		}
	}
	if len(backups) != 1 {
		t.Fatalf("want 1 backup, got %v", entries)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() == 0 || fi.Size() > 1<<20 {
		t.Fatalf("current log has %d bytes", fi.Size())
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	last := strings.Split(strings.TrimSpace(string(data)), "\n")
	if l := last[len(last)-1]; !strings.Contains(l, " 3 bulk: x") || !strings.HasSuffix(l, "[i=1499]") {
		t.Fatalf("last line %q", l)
	}
}

func TestNewLoggerErrors(t *testing.T) {
	cfg := DefaultLogConfig()
	cfg.Format = "xml"
	if _, _, err := NewLogger(cfg); err == nil || !strings.Contains(err.Error(), `"xml"`) {
		t.Fatalf("bad format: %v", err)
	}
	cfg = DefaultLogConfig()
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.File = filepath.Join(blocker, "x.log") // parent is a file
	if _, _, err := NewLogger(cfg); err == nil {
		t.Fatal("unwritable log file accepted")
	}
}

func TestLogConfigValidate(t *testing.T) {
	c := LogConfig{Level: 6, Format: "xml", MaxSizeMB: 0, MaxBackups: -1, MaxAgeDays: -1}
	ps := Problems{}
	c.Validate(&ps, "log")
	want := []string{"log.level", "log.format", "log.max_size_mb", "log.max_backups", "log.max_age_days"}
	errs := flatten(ps.Err())
	if len(errs) != len(want) {
		t.Fatalf("got %v", errs)
	}
	for i, e := range errs {
		var ce *ConfigError
		if !errors.As(e, &ce) || ce.Key != want[i] {
			t.Errorf("problem %d: %v, want key %s", i, e, want[i])
		}
	}
	ps = Problems{}
	DefaultLogConfig().Validate(&ps, "log")
	if ps.Err() != nil {
		t.Fatalf("defaults invalid: %v", ps.Err())
	}
}
