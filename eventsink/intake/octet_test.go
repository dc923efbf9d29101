package intake

import (
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/events"
)

// counted frames msg as RFC 6587 octet counting does: "LEN MSG".
func counted(msg string) string { return fmt.Sprintf("%d %s", len(msg), msg) }

// TestTCPOctetCounting: a lines listener takes octet-counted frames and
// lines, mixed on one connection; the count is not part of the event.
func TestTCPOctetCounting(t *testing.T) {
	rec := newRecorder()
	srv, _ := start(t, Config{Network: "tcp", Framing: events.Line}, rec)
	c := dial(t, srv)
	want := []string{
		"<13>1 2026-11-21T10:04:05Z host app - - - counted",
		"<14>Nov 21 10:04:05 host app: a line",
		"<13>1 2026-11-21T10:04:05Z host app - - - counted, newline after",
		"plain text",
	}
	send(t, c, counted(want[0])+want[1]+"\n"+counted(want[2])+"\n"+want[3]+"\n")
	for _, w := range want {
		if e := rec.next(t); e.data != w || e.framing != events.Line {
			t.Fatalf("got %+v, want %q", e, w)
		}
	}
	waitFor(t, "the events to be counted", func() bool { return srv.Stats().Events == uint64(len(want)) })
}

// TestTCPOctetCountTooLarge: a count over the maximum event size closes
// that connection with a level-1 line naming the sender and the count;
// the events it sent before are stored, and another sender goes on.
func TestTCPOctetCountTooLarge(t *testing.T) {
	rec := newRecorder()
	srv, logs := start(t, Config{Network: "tcp", Framing: events.Line, MaxEvent: 64}, rec)
	bad, other := dial(t, srv), dial(t, srv)
	send(t, other, "<13>from the other sender, before\n")
	if e := rec.next(t); e.data != "<13>from the other sender, before" {
		t.Fatalf("got %+v", e)
	}
	send(t, bad, counted("<13>stored")+"9999 <13>"+strings.Repeat("x", 100)+"\n<13>never stored\n")
	if e := rec.next(t); e.data != "<13>stored" || e.source != bad.LocalAddr().String() {
		t.Fatalf("got %+v, want the event before the frame", e)
	}
	expectClosed(t, bad)
	line := "intake: line connection from " + bad.LocalAddr().String() +
		" closed: octet-counted frame over the maximum event size: 9999 bytes, limit 64"
	waitFor(t, "the log line", func() bool { return logs.naming(logrus.ErrorLevel, line) })
	send(t, other, "<13>from the other sender, after\n")
	if e := rec.next(t); e.data != "<13>from the other sender, after" {
		t.Fatalf("got %+v", e)
	}
	waitFor(t, "the events to be counted", func() bool { return srv.Stats().Events == 3 })
	if st := srv.Stats(); st.Oversized != 1 || st.Malformed != 0 {
		t.Fatalf("stats %+v, want 1 oversized", st)
	}
	select {
	case e := <-rec.ch:
		t.Fatalf("an event after the frame was stored: %+v", e)
	default:
	}
}

// TestSystemLogger sends with the system's own logger (util-linux), over
// TCP, octet-counted and newline-framed, where it is installed.
func TestSystemLogger(t *testing.T) {
	logger, err := exec.LookPath("logger")
	if err != nil {
		t.Skip("logger (util-linux) is not installed: octet counting is not tried with a real sender")
	}
	if out, err := exec.Command(logger, "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "--octet-count") {
		t.Skipf("this logger has no --octet-count (util-linux logger 2.26 and later): %v", err)
	}
	rec := newRecorder()
	srv, _ := start(t, Config{Network: "tcp", Framing: events.Line}, rec)
	port := strconv.Itoa(srv.Addr().(*net.TCPAddr).Port)
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--octet-count"}, "relay chain octet-counted test message"},
		{nil, "relay chain newline-framed test message"},
		{[]string{"--octet-count", "--rfc3164"}, "relay chain octet-counted RFC 3164 message"},
	} {
		args := append([]string{"--tcp", "--server", "127.0.0.1", "--port", port, "--tag", "rctest", "--priority", "user.notice"}, tc.args...)
		if out, err := exec.Command(logger, append(args, tc.msg)...).CombinedOutput(); err != nil {
			t.Fatalf("logger %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		e := rec.next(t)
		if !strings.HasPrefix(e.data, "<13>") || !strings.HasSuffix(e.data, tc.msg) || !strings.Contains(e.data, "rctest") {
			t.Errorf("logger %s: event %q, want <13>...rctest...%s", strings.Join(tc.args, " "), e.data, tc.msg)
		}
	}
}
