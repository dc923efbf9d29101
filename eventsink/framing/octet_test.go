package framing

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/relaychain/relaychain/events"
)

// counted frames msg as RFC 6587 octet counting does: "LEN MSG".
func counted(msg string) string { return fmt.Sprintf("%d %s", len(msg), msg) }

const (
	msgA = "<13>1 2026-11-21T10:04:05Z host app - - - first message"
	msgB = "<14>Nov 21 10:04:05 host app: second, with a ; and ==="
)

// TestOctetCounting reads octet-counted frames (RFC 6587), newline-framed
// lines, and both mixed on one stream, read whole and in chunks of every
// size readAll tries.
func TestOctetCounting(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		want []string
	}{
		{"one frame, no newline", counted(msgA), 0, []string{"ev:" + msgA}},
		{"frames back to back", counted(msgA) + counted(msgB), 0, []string{"ev:" + msgA, "ev:" + msgB}},
		{"newline after each frame", counted(msgA) + "\n" + counted(msgB) + "\r\n", 0, []string{"ev:" + msgA, "ev:" + msgB}},
		{"newline counted in the frame", counted(msgA+"\n") + counted(msgB+"\r\n"), 0, []string{"ev:" + msgA, "ev:" + msgB}},
		{"mixed", msgA + "\n" + counted(msgB) + "plain text\n" + counted(msgA) + msgB + "\n", 0,
			[]string{"ev:" + msgA, "ev:" + msgB, "ev:plain text", "ev:" + msgA, "ev:" + msgB}},
		{"a count as the frame's only content", counted("<1>"), 0, []string{"ev:<1>"}},
		{"exactly max", counted("<1>3456789"), 10, []string{"ev:<1>3456789"}},
		{"count shorter than the message", "6 <13>abc rest\n", 0, []string{"ev:<13>ab", "ev:c rest"}},
		{"newline inside a frame", counted("<13>two\nlines") + counted(msgB), 0, []string{"malformed", "ev:" + msgB}},
		{"control byte inside a frame", counted("<13>a\x1bb") + msgB + "\n", 0, []string{"malformed", "ev:" + msgB}},
		{"frame cut by the end", counted(msgA)[:40], 0, []string{"malformed"}},
		{"header cut by the end", "57 <1", 0, []string{"ev:57 <1"}},
		// Lines that only look like a count: taken as lines.
		{"digits then text", "2026 was a year\n", 0, []string{"ev:2026 was a year"}},
		{"digits, space, not a PRI", "404 <html> not found\n", 0, []string{"ev:404 <html> not found"}},
		{"leading zero", "07 <13>abcd\n", 0, []string{"ev:07 <13>abcd"}},
		{"no space", "7<13>abcd\n", 0, []string{"ev:7<13>abcd"}},
		{"empty PRI", "4 <>ab\n", 0, []string{"ev:4 <>ab"}},
		{"PRI of 4 digits", "9 <1234>abc\n", 0, []string{"ev:9 <1234>abc"}},
		{"19 digits", "1234567890123456789 <13>x\n", 0, []string{"ev:1234567890123456789 <13>x"}},
		{"only digits", "12345\n678", 0, []string{"ev:12345", "ev:678"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := readAll(t, events.Line, tt.in, tt.max)
			if !equal(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestOctetCountTooLarge: a count over the maximum event size ends the
// stream with ErrFrameTooLarge, sticky; the events before it come first.
func TestOctetCountTooLarge(t *testing.T) {
	for _, in := range []string{
		counted(msgA) + "plain\n" + "65 <13>" + strings.Repeat("x", 58) + msgB + "\n",
		counted(msgA) + "plain\n" + "999999999999999999 <13>x\n" + msgB + "\n",
	} {
		for _, n := range []int{1, 3, 1 << 20} {
			rd := NewReader(&chunkReader{data: []byte(in), n: n}, events.Line, 64)
			for _, want := range []string{msgA, "plain"} {
				ev, err := rd.Next()
				if err != nil || string(ev) != want {
					t.Fatalf("chunks of %d: Next = %q, %v; want %q", n, ev, err, want)
				}
			}
			for i := 0; i < 2; i++ {
				ev, err := rd.Next()
				if !errors.Is(err, ErrFrameTooLarge) || ev != nil {
					t.Fatalf("chunks of %d, call %d: Next = %q, %v; want ErrFrameTooLarge", n, i, ev, err)
				}
				if errors.Is(err, ErrOversized) || errors.Is(err, ErrMalformed) {
					t.Fatalf("%v is also a per-event error: the caller would read on", err)
				}
			}
		}
	}
	_, err := NewReader(strings.NewReader("65 <13>"), events.Line, 64).Next()
	if want := "octet-counted frame over the maximum event size: 65 bytes, limit 64"; err == nil || err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
}

// Octet counting is a stream framing (RFC 6587): a datagram (RFC 5426)
// holds its message as it is.
func TestOctetCountingNotInDatagrams(t *testing.T) {
	in := counted(msgA) + "\n"
	if got := split(t, events.Line, []byte(in), 0); !equal(got, []string{"ev:" + strings.TrimSuffix(in, "\n")}) {
		t.Errorf("datagram: %q", got)
	}
}

// FuzzOctetFraming builds a stream of messages from the input, each
// framed by a newline or by octet counting as the bits of mask say, and
// reads it back in chunks: every message must come back, in order, and
// nothing else.
func FuzzOctetFraming(f *testing.F) {
	f.Add([]byte("first\nsecond one\nthird"), uint64(0b101), uint8(1))
	f.Add([]byte("a\n\nb"), uint64(0b11), uint8(3))
	f.Add([]byte(strings.Repeat("y", 300)), uint64(1), uint8(7))
	f.Fuzz(func(t *testing.T, data []byte, mask uint64, chunk uint8) {
		const max = 128
		var stream bytes.Buffer
		var want []string
		for i, part := range bytes.Split(data, []byte("\n")) {
			if i >= 64 {
				break
			}
			msg := []byte("<13>")
			for _, c := range part {
				if c < 0x20 || c == 0x7f {
					c = '.'
				}
				msg = append(msg, c)
			}
			if len(msg) > max {
				msg = msg[:max]
			}
			if mask&(1<<i) != 0 {
				stream.WriteString(counted(string(msg)))
			} else {
				stream.Write(msg)
				stream.WriteByte('\n')
			}
			want = append(want, "ev:"+string(msg))
		}
		got := collect(t, NewReader(&chunkReader{data: stream.Bytes(), n: int(chunk%32) + 1}, events.Line, max))
		if !equal(got, want) {
			t.Fatalf("stream %q:\n got %q\nwant %q", stream.Bytes(), got, want)
		}
	})
}

// FuzzOctetHeader checks octetHeader against its definition on any bytes:
// a yes is digits (no leading zero), a space, "<", 1 to 3 digits, ">"; a
// "more" is a prefix of such a header; and a longer input never turns a
// decided answer around.
func FuzzOctetHeader(f *testing.F) {
	for _, s := range []string{"106 <13>1 2026", "0 <1>", "12", "12 <", "1 <1234>", "99999999999999999999 <1>", "5 <>"} {
		f.Add([]byte(s), []byte("x"))
	}
	f.Fuzz(func(t *testing.T, b, more []byte) {
		hdr, n, res := octetHeader(b)
		switch res {
		case octetYes:
			digits := string(b[:hdr-1])
			if digits == "" || digits[0] == '0' || strings.Trim(digits, "0123456789") != "" || b[hdr-1] != ' ' || b[hdr] != '<' {
				t.Fatalf("%q: yes with header %q", b, b[:hdr])
			}
			if fmt.Sprint(n) != digits {
				t.Fatalf("%q: count %d, digits %q", b, n, digits)
			}
			if i := bytes.IndexByte(b[hdr:], '>'); i < 2 || i > 4 || strings.Trim(string(b[hdr+1:hdr+i]), "0123456789") != "" {
				t.Fatalf("%q: yes without a PRI", b)
			}
		case octetMore:
			if len(b) > maxCountDigits+6 {
				t.Fatalf("%q: more after %d bytes", b, len(b))
			}
		}
		longer := append(append([]byte{}, b...), more...)
		h2, n2, r2 := octetHeader(longer)
		if res != octetMore && (r2 != res || h2 != hdr || n2 != n) {
			t.Fatalf("%q said %d, %q says %d", b, res, longer, r2)
		}
	})
}

// The reader's bytes come only from its source: a read error in a frame is
// the read error, not an event.
func TestOctetCountingReadError(t *testing.T) {
	boom := errors.New("boom")
	rd := NewReader(io.MultiReader(strings.NewReader(counted(msgA)+counted(msgB)[:10]), &errReader{boom}), events.Line, 0)
	if ev, err := rd.Next(); err != nil || string(ev) != msgA {
		t.Fatalf("Next = %q, %v", ev, err)
	}
	if _, err := rd.Next(); !errors.Is(err, boom) {
		t.Fatalf("Next error = %v, want boom", err)
	}
}

type errReader struct{ err error }

func (e *errReader) Read([]byte) (int, error) { return 0, e.err }
