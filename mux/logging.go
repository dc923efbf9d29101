package mux

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/sirupsen/logrus"
)

// yamuxLogger routes yamux's log lines into the node's logger: its errors
// and warnings at level 2 (the link's own lines say what it means), the
// rest at level 4.
type yamuxLogger struct{ log *logrus.Entry }

func (y yamuxLogger) Print(v ...any)                 { y.line(fmt.Sprint(v...)) }
func (y yamuxLogger) Println(v ...any)               { y.line(fmt.Sprintln(v...)) }
func (y yamuxLogger) Printf(format string, v ...any) { y.line(fmt.Sprintf(format, v...)) }

func (y yamuxLogger) line(s string) {
	s = strings.TrimSpace(s)
	switch {
	case strings.Contains(s, "frame for missing stream"), strings.Contains(s, "discarding data for stream"):
		// Frames that cross a stream's close or reset: normal when
		// sessions end, not a problem for the operator.
		y.log.Debug(s)
	case strings.HasPrefix(s, "[ERR]"), strings.HasPrefix(s, "[WARN]"):
		y.log.Warn(strings.TrimSpace(s[strings.IndexByte(s, ']')+1:]))
	default:
		y.log.Debug(s)
	}
}

func stack() string { return string(debug.Stack()) }
