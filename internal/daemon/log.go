package daemon

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

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
