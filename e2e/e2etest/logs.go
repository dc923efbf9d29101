package e2etest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pollInterval is how often WaitLog and Eventually look again.
const pollInterval = 20 * time.Millisecond

// LogSize is the current size of the daemon's log, for WaitLog's skip.
func (p *Process) LogSize() int64 {
	fi, err := os.Stat(p.Log)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// LogSince returns the daemon's log from byte offset off on ("" when it is
// shorter). The log holds every run of the daemon from the same directory.
func (p *Process) LogSince(off int64) string {
	b, err := os.ReadFile(p.Log)
	if err != nil || int64(len(b)) < off {
		return ""
	}
	return string(b[off:])
}

// WaitLog waits until the daemon's log, from byte offset skip on, holds a
// match for each of the regular expressions patterns (in any order), and
// returns the offset just after the line of the last of those matches. It
// fails the test, showing the log, after d or as soon as the process
// exits.
func (p *Process) WaitLog(t testing.TB, skip int64, d time.Duration, patterns ...string) int64 {
	t.Helper()
	return waitLog(t, p.Name, p.Log, p, skip, d, patterns)
}

// WaitLogFile is WaitLog for the log file path of a daemon run by other
// means (the start scripts, say).
func WaitLogFile(t testing.TB, path string, skip int64, d time.Duration, patterns ...string) int64 {
	t.Helper()
	return waitLog(t, path, path, nil, skip, d, patterns)
}

// waitLog implements WaitLog; p, when not nil, is the process that writes
// the log.
func waitLog(t testing.TB, name, path string, p *Process, skip int64, d time.Duration, patterns []string) int64 {
	t.Helper()
	res := make([]*regexp.Regexp, len(patterns))
	for i, s := range patterns {
		res[i] = regexp.MustCompile(s)
	}
	deadline := time.Now().Add(d)
	for {
		b, _ := os.ReadFile(path)
		if int64(len(b)) > skip {
			if end, ok := matchAll(b[skip:], res); ok {
				return skip + int64(end)
			}
		}
		if p != nil && p.Exited() {
			t.Fatalf("%s exited (%v) while waiting for %q in its log; output:\n%s\nlog:\n%s", name, p.err, patterns, FileText(p.Out), LastLines(b, 40))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q in its log within %s; log:\n%s", name, patterns, d, LastLines(b, 40))
		}
		time.Sleep(pollInterval)
	}
}

// matchAll reports whether text holds a match of every re, and the offset
// of the end of the line of the last one.
func matchAll(text []byte, res []*regexp.Regexp) (end int, ok bool) {
	for _, re := range res {
		loc := re.FindIndex(text)
		if loc == nil {
			return 0, false
		}
		e := loc[1]
		if nl := bytes.IndexByte(text[e:], '\n'); nl >= 0 {
			e += nl + 1
		}
		end = max(end, e)
	}
	return end, true
}

// Eventually polls cond until it returns nil and fails the test with
// cond's last error after d.
func Eventually(t testing.TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, d, err)
		}
		time.Sleep(pollInterval)
	}
}

// FileText is the text of the file path, or the error reading it in
// parentheses: for failure messages.
func FileText(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(b)
}

// Tail is the last n lines of the file path, or the error reading it in
// parentheses: for failure messages.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return LastLines(b, n)
}

// LastLines is the last n lines of b.
func LastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// showLogs logs the last lines of each process's log.
func showLogs(t testing.TB, procs []*Process, n int) {
	for _, p := range procs {
		t.Logf("--- last lines of %s's log (%s):\n%s", p.Name, filepath.Base(p.Log), Tail(p.Log, n))
	}
}

// RouteAdded is the pattern of the level-3 log line in which a node's
// routing table gains label: "routing: routes changed through CHILD: N
// added, M removed [added=...,LABEL,... ...]" (each route is named alone
// only at level 4).
func RouteAdded(label string) string {
	return `routing: routes changed through \S+: \d+ added, \d+ removed \[added=(\S*,)?` + regexp.QuoteMeta(label) + `[, ]`
}

// SessionLines returns the lines of the daemon's log, from byte offset off
// on, about the session id (as the daemons log it: id=...).
func (p *Process) SessionLines(off int64, id string) []string {
	var out []string
	for _, l := range strings.Split(p.LogSince(off), "\n") {
		if strings.Contains(l, " id="+id+" ") || strings.Contains(l, " id="+id+"]") || strings.Contains(l, "[id="+id) {
			out = append(out, l)
		}
	}
	return out
}

// reField is one key=value of a text log line; a value may be quoted.
var reField = regexp.MustCompile(`([a-z_]+)=("(?:[^"\\]|\\.)*"|[^ \]]*)`)

// LogFields returns the fields of a text log line ([key=value ...]),
// quoted values unquoted.
func LogFields(line string) map[string]string {
	i := strings.LastIndex(line, " [")
	if i < 0 {
		return map[string]string{}
	}
	out := map[string]string{}
	for _, m := range reField.FindAllStringSubmatch(line[i+2:], -1) {
		v := m[2]
		if u, err := strconv.Unquote(v); err == nil && strings.HasPrefix(v, `"`) {
			v = u
		}
		out[m[1]] = v
	}
	return out
}
