package daemon

import (
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

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
