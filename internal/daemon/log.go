package daemon

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/sirupsen/logrus"
	"gopkg.in/natefinch/lumberjack.v2"
)

// Numeric log levels, as operators write them in configuration files and
// on the command line.
const (
	LevelSilent  = 0 // nothing at all
	LevelError   = 1 // errors
	LevelWarn    = 2 // warnings
	LevelInfo    = 3 // handshakes and session life-cycle; the default
	LevelDebug   = 4 // debugging
	LevelTrace   = 5 // tracing; any higher number means the same
	MaxLevel     = LevelTrace
	DefaultLevel = LevelInfo
)

// ComponentKey is the entry field that names the component in a log line
// ("routing" in "3 routing: WHO command received").
const ComponentKey = "component"

// Log formats accepted in LogConfig.Format.
const (
	FormatText = "text"
	FormatJSON = "json"
)

// LogrusLevel maps a numeric level to the logrus threshold. Level 0 maps to
// PanicLevel; the formatters of this package write nothing at all while a
// logger is at PanicLevel, so 0 is really silent. Negative numbers count as
// 0 and numbers above 5 as 5.
func LogrusLevel(n int) logrus.Level {
	switch {
	case n <= LevelSilent:
		return logrus.PanicLevel
	case n == LevelError:
		return logrus.ErrorLevel
	case n == LevelWarn:
		return logrus.WarnLevel
	case n == LevelInfo:
		return logrus.InfoLevel
	case n == LevelDebug:
		return logrus.DebugLevel
	default:
		return logrus.TraceLevel
	}
}

// NumericLevel maps a logrus threshold back to a numeric level (0..5).
// FatalLevel counts as 1: only errors and worse are printed.
func NumericLevel(l logrus.Level) int {
	switch l {
	case logrus.PanicLevel:
		return LevelSilent
	case logrus.FatalLevel, logrus.ErrorLevel:
		return LevelError
	case logrus.WarnLevel:
		return LevelWarn
	case logrus.InfoLevel:
		return LevelInfo
	case logrus.DebugLevel:
		return LevelDebug
	default:
		return LevelTrace
	}
}

// entryLevel is the number printed for an entry: panic and fatal entries are
// errors (1), never 0.
func entryLevel(l logrus.Level) int {
	if n := NumericLevel(l); n > LevelSilent {
		return n
	}
	return LevelError
}

// silenced reports whether the entry's logger is at level 0.
func silenced(e *logrus.Entry) bool {
	return e.Logger != nil && e.Logger.GetLevel() == logrus.PanicLevel
}

// Component returns an entry of log that carries the component field, the
// usual way to hand a logger to a subsystem.
func Component(log logrus.FieldLogger, name string) *logrus.Entry {
	return log.WithField(ComponentKey, name)
}

// TextFormatter writes the classic layout, one line per entry:
//
//	YY/MM/DD HH:MM:SS.mmm N component: message [key=value key2=value2]
//
// N is the numeric level (1..5). "component: " is left out when the entry has
// no component field; the other fields follow sorted by key, values that hold
// spaces, quotes, brackets or '=' quoted; the brackets are left out when there
// are no fields. Nothing is written while the logger is at level 0.
type TextFormatter struct{}

// Format implements logrus.Formatter.
func (TextFormatter) Format(e *logrus.Entry) ([]byte, error) {
	if silenced(e) {
		return nil, nil
	}
	var b bytes.Buffer
	b.WriteString(e.Time.Format("06/01/02 15:04:05.000"))
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(entryLevel(e.Level)))
	b.WriteByte(' ')
	if c := componentOf(e); c != "" {
		b.WriteString(c)
		b.WriteString(": ")
	}
	b.WriteString(strings.TrimRight(e.Message, "\n"))
	keys := fieldKeys(e)
	if len(keys) > 0 {
		b.WriteString(" [")
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(k)
			b.WriteByte('=')
			b.WriteString(quoteValue(fieldString(e.Data[k])))
		}
		b.WriteByte(']')
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// JSONFormatter writes one JSON object per line:
//
//	{"time":"2026-11-21T10:04:05.000+01:00","level":3,"component":"routing","msg":"WHO command received","fields":{"l":"relay-dmz1"}}
//
// component and fields are left out when empty; error values are written as
// their message. Nothing is written while the logger is at level 0.
type JSONFormatter struct{}

// Format implements logrus.Formatter.
func (JSONFormatter) Format(e *logrus.Entry) ([]byte, error) {
	if silenced(e) {
		return nil, nil
	}
	type line struct {
		Time      string         `json:"time"`
		Level     int            `json:"level"`
		Component string         `json:"component,omitempty"`
		Msg       string         `json:"msg"`
		Fields    map[string]any `json:"fields,omitempty"`
	}
	l := line{
		Time:      e.Time.Format("2006-01-02T15:04:05.000Z07:00"),
		Level:     entryLevel(e.Level),
		Component: componentOf(e),
		Msg:       strings.TrimRight(e.Message, "\n"),
	}
	if keys := fieldKeys(e); len(keys) > 0 {
		l.Fields = make(map[string]any, len(keys))
		for _, k := range keys {
			l.Fields[k] = jsonValue(e.Data[k])
		}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(l); err != nil {
		return nil, fmt.Errorf("encode log entry: %w", err)
	}
	return b.Bytes(), nil
}

func componentOf(e *logrus.Entry) string {
	v, ok := e.Data[ComponentKey]
	if !ok || v == nil {
		return ""
	}
	return fieldString(v)
}

func fieldKeys(e *logrus.Entry) []string {
	keys := make([]string, 0, len(e.Data))
	for k := range e.Data {
		if k != ComponentKey {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

func fieldString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case error:
		return v.Error()
	case fmt.Stringer:
		return v.String()
	default:
		return fmt.Sprint(v)
	}
}

// jsonValue keeps values that marshal well and turns the rest into text.
func jsonValue(v any) any {
	switch v := v.(type) {
	case nil, string, bool, int, int8, int16, int32, int64,
		uint, uint8, uint16, uint32, uint64, float32, float64:
		return v
	case error:
		return v.Error()
	case time.Duration:
		return v.String()
	case fmt.Stringer:
		return v.String()
	}
	if _, err := json.Marshal(v); err != nil {
		return fmt.Sprint(v)
	}
	return v
}

func quoteValue(s string) string {
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if r == '"' || r == '=' || r == '[' || r == ']' || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// LogConfig is the `log` section every daemon's configuration embeds:
//
//	log:
//	  level: 3           # 0 silent, 1 errors, 2 warnings, 3 info (default), 4 debug, 5 trace
//	  format: text       # text (default) or json
//	  file: /var/log/relay.log   # empty (default): standard error
//	  max_size_mb: 10    # rotate when the file reaches this size; default 10
//	  max_backups: 5     # rotated files kept; default 5, 0 keeps all
//	  max_age_days: 0    # delete rotated files older than this; default 0 keeps them
//	  compress: false    # gzip rotated files; default false
type LogConfig struct {
	// Level is the numeric level, 0..5. Default 3.
	Level int `yaml:"level"`
	// Format is "text" (the classic layout) or "json". Default "text".
	Format string `yaml:"format"`
	// File is the log file. Empty (the default) means standard error, with
	// no rotation.
	File string `yaml:"file"`
	// MaxSizeMB is the size in megabytes at which File is rotated. Default 10.
	MaxSizeMB int `yaml:"max_size_mb"`
	// MaxBackups is how many rotated files are kept. Default 5; 0 keeps all.
	MaxBackups int `yaml:"max_backups"`
	// MaxAgeDays removes rotated files older than this many days. Default 0:
	// no removal by age.
	MaxAgeDays int `yaml:"max_age_days"`
	// Compress gzips rotated files. Default false.
	Compress bool `yaml:"compress"`
}

// DefaultLogConfig returns the defaults documented on LogConfig.
func DefaultLogConfig() LogConfig {
	return LogConfig{
		Level:      DefaultLevel,
		Format:     FormatText,
		MaxSizeMB:  10,
		MaxBackups: 5,
	}
}

// Validate adds a problem to ps for every bad field; path is where the
// section sits in the file, usually "log".
func (c LogConfig) Validate(ps *Problems, path string) {
	key := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	if c.Level < LevelSilent || c.Level > MaxLevel {
		ps.Errorf(key("level"), "must be 0..%d, not %d", MaxLevel, c.Level)
	}
	if c.Format != FormatText && c.Format != FormatJSON {
		ps.Errorf(key("format"), "must be %q or %q, not %q", FormatText, FormatJSON, c.Format)
	}
	if c.MaxSizeMB < 1 {
		ps.Errorf(key("max_size_mb"), "must be at least 1, not %d", c.MaxSizeMB)
	}
	if c.MaxBackups < 0 {
		ps.Errorf(key("max_backups"), "must not be negative")
	}
	if c.MaxAgeDays < 0 {
		ps.Errorf(key("max_age_days"), "must not be negative")
	}
}

// lockedWriter serialises writes, so that Level's notices (written beside
// logrus, not through it) never interleave with ordinary lines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// NewLogger builds the daemon's logger from cfg: level, format and output
// (standard error, or cfg.File with size-based rotation). The caller closes
// the returned io.Closer when the daemon ends; closing it closes the log file
// (for standard error it does nothing). The file is opened (and its
// directory created) at once, so a bad path is reported here.
//
// Rotation is lumberjack's: it starts one goroutine per log file that lives
// as long as the process.
func NewLogger(cfg LogConfig) (*logrus.Logger, io.Closer, error) {
	var f logrus.Formatter
	switch cfg.Format {
	case FormatText, "":
		f = TextFormatter{}
	case FormatJSON:
		f = JSONFormatter{}
	default:
		return nil, nil, fmt.Errorf("log format %q: must be %q or %q", cfg.Format, FormatText, FormatJSON)
	}
	var out io.Writer = os.Stderr
	var closer io.Closer = nopCloser{}
	if cfg.File != "" {
		if err := probeLogFile(cfg.File); err != nil {
			return nil, nil, err
		}
		size := cfg.MaxSizeMB
		if size < 1 {
			size = DefaultLogConfig().MaxSizeMB
		}
		lj := &lumberjack.Logger{
			Filename:   cfg.File,
			MaxSize:    size,
			MaxBackups: max(cfg.MaxBackups, 0),
			MaxAge:     max(cfg.MaxAgeDays, 0),
			Compress:   cfg.Compress,
			LocalTime:  true,
		}
		out, closer = lj, lj
	}
	logger := &logrus.Logger{
		Out:       &lockedWriter{w: out},
		Formatter: f,
		Hooks:     make(logrus.LevelHooks),
		Level:     LogrusLevel(cfg.Level),
		ExitFunc:  os.Exit,
	}
	return logger, closer, nil
}

func probeLogFile(name string) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	return nil
}

// Level is the run-time log level of one logger, changed by signals or by
// an operator command. It is safe for concurrent use.
//
// Every change writes one notice line, at level 2 (warning) and in the
// logger's format, whatever the old and new levels are, even when the new
// level is 0:
//
//	26/11/21 10:04:05 2 log: level changed from 3 to 4 [by=SIGUSR1]
//
// So the log always records why it became more or less verbose, and silence
// is explained by its last line. Apart from these notices, level 0 writes
// nothing. The notice is written straight to the logger's Out (not through
// logrus, which would drop it), so Out must accept concurrent writes; the
// loggers from NewLogger do.
type Level struct {
	mu     sync.Mutex
	logger *logrus.Logger
}

// NewLevel sets logger to the numeric level n (clamped to 0..5) and returns
// the handle that changes it later. It writes no notice.
func NewLevel(logger *logrus.Logger, n int) *Level {
	logger.SetLevel(LogrusLevel(n))
	return &Level{logger: logger}
}

// Get returns the current numeric level.
func (l *Level) Get() int {
	return NumericLevel(l.logger.GetLevel())
}

// Set changes the level to n (clamped to 0..5), writes the notice naming by
// (who asked: "SIGUSR1", "SIGHUP", ...), and returns the old level.
func (l *Level) Set(n int, by string) (old int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.setLocked(n, by)
}

// Raise makes the log one level more verbose (at most 5) and returns the new level.
func (l *Level) Raise(by string) int {
	return l.add(1, by)
}

// Lower makes the log one level quieter (at least 0) and returns the new level.
func (l *Level) Lower(by string) int {
	return l.add(-1, by)
}

func (l *Level) add(d int, by string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := min(max(l.Get()+d, LevelSilent), MaxLevel)
	l.setLocked(n, by)
	return n
}

func (l *Level) setLocked(n int, by string) int {
	n = min(max(n, LevelSilent), MaxLevel)
	old := l.Get()
	l.logger.SetLevel(LogrusLevel(n))
	msg := fmt.Sprintf("level changed from %d to %d", old, n)
	if old == n {
		msg = fmt.Sprintf("level stays %d", n)
	}
	l.notice(msg, by)
	return old
}

// notice formats and writes one entry regardless of the logger's level.
func (l *Level) notice(msg, by string) {
	e := &logrus.Entry{
		// Logger stays nil: the formatters would drop the line at level 0.
		Data:    logrus.Fields{ComponentKey: "log"},
		Time:    time.Now(),
		Level:   logrus.WarnLevel,
		Message: msg,
	}
	if by != "" {
		e.Data["by"] = by
	}
	b, err := l.logger.Formatter.Format(e)
	if err != nil {
		return
	}
	// A failed write cannot be logged anywhere better than the log itself.
	_, _ = l.logger.Out.Write(b)
}
