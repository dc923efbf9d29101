package framing

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/relaychain/relaychain/events"
)

// collect reads every event from rd and describes the results: "ev:" plus the
// event, "oversized", "malformed", or "err:" plus a read error other than EOF.
func collect(t *testing.T, rd *Reader) []string {
	t.Helper()
	return collectTo(t, rd, io.EOF)
}

// collectTo is collect for a reader whose input ends with the error end.
func collectTo(t *testing.T, rd *Reader, end error) []string {
	t.Helper()
	var out []string
	for i := 0; ; i++ {
		if i > 1<<20 {
			t.Fatal("reader does not end")
		}
		ev, err := rd.Next()
		switch {
		case err == nil:
			out = append(out, "ev:"+string(ev))
		case errors.Is(err, ErrOversized):
			out = append(out, "oversized")
		case errors.Is(err, ErrMalformed):
			out = append(out, "malformed")
		case errors.Is(err, end):
			return out
		default:
			return append(out, "err:"+err.Error())
		}
	}
}

// chunkReader returns the data in reads of at most n bytes.
type chunkReader struct {
	data []byte
	n    int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(c.n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// readAll parses in with every chunking that must give the same result and
// checks they agree.
func readAll(t *testing.T, f events.Framing, in string, max int) []string {
	t.Helper()
	want := collect(t, NewReader(strings.NewReader(in), f, max))
	for _, n := range []int{1, 2, 3, 7, 64} {
		got := collect(t, NewReader(&chunkReader{data: []byte(in), n: n}, f, max))
		if !equal(got, want) && !endAmbiguous(in) {
			t.Fatalf("chunks of %d: got %q, one read gave %q", n, got, want)
		}
	}
	return want
}

// endAmbiguous reports input where a read boundary right after END may change
// the result by design: END followed by a name byte or '='.
func endAmbiguous(in string) bool {
	for i := 0; ; {
		j := strings.Index(in[i:], "END")
		if j < 0 {
			return false
		}
		i += j + 3
		if i < len(in) && (isNameByte(in[i]) || in[i] == '=') {
			return true
		}
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestEIF(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		want []string
	}{
		{"one with newline", "TEC_Event;msg='hello';severity=WARNING;END\n", 0,
			[]string{"ev:TEC_Event;msg='hello';severity=WARNING;END"}},
		{"no newline", "A;x=1;END", 0, []string{"ev:A;x=1;END"}},
		{"back to back", "A;x=1;ENDB;y=2;END", 0, []string{"malformed"}},
		{"several", "A;x=1;END\nB;y=2;END\r\n\nC;END", 0,
			[]string{"ev:A;x=1;END", "ev:B;y=2;END", "ev:C;END"}},
		{"semicolon after END", "A;x=1;END;B;y=2;END;", 0, []string{"ev:A;x=1;END", "ev:B;y=2;END"}},
		{"NUL separated", "A;END\x00\x00B;END\x00", 0, []string{"ev:A;END", "ev:B;END"}},
		{"quoted semicolon and END", "A;msg='a;END b';END\n", 0, []string{"ev:A;msg='a;END b';END"}},
		{"double quotes", `A;msg="x;y";END`, 0, []string{`ev:A;msg="x;y";END`}},
		{"doubled quote", "A;msg='it''s;END';END", 0, []string{"ev:A;msg='it''s;END';END"}},
		{"apostrophe inside unquoted value", "A;msg=it's;END", 0, []string{"ev:A;msg=it's;END"}},
		{"ENDPOINT attribute", "A;ENDPOINT=x;END", 0, []string{"ev:A;ENDPOINT=x;END"}},
		{"END attribute", "A;END=x;END", 0, []string{"ev:A;END=x;END"}},
		{"multi-line event", "A;\n x=1;\n y='two words';\nEND\n", 0, []string{"ev:A;\n x=1;\n y='two words';\nEND"}},
		{"space before END", "A;x=1; END", 0, []string{"ev:A;x=1; END"}},
		{"empty value", "A;x=;END", 0, []string{"ev:A;x=;END"}},
		{"empty field tolerated", "A;x=1;;END", 0, []string{"ev:A;x=1;;END"}},
		{"END alone", "END\nA;END", 0, []string{"malformed", "ev:A;END"}},
		{"missing class", "x=1;END", 0, []string{"malformed"}},
		{"attribute without value", "A;x;END", 0, []string{"malformed"}},
		{"empty attribute name", "A;=v;END", 0, []string{"malformed"}},
		{"space in class", "A B;END", 0, []string{"malformed"}},
		{"control character", "A;x=\x01;END\nB;END", 0, []string{"malformed", "ev:B;END"}},
		{"unterminated at EOF", "A;x=1;", 0, []string{"malformed"}},
		{"unterminated quote at EOF", "A;x='1;END", 0, []string{"malformed"}},
		{"only separators", " \n\x00;\r\n", 0, nil},
		{"exactly max", "A;x=12;END", 10, []string{"ev:A;x=12;END"}},
		{"oversized then resync", "A;x=123456789;END\nB;y=2;END", 10, []string{"oversized", "ev:B;y=2;END"}},
		{"oversized unbalanced quote", "A;x='12345678;END\nB;END", 10, []string{"oversized", "ev:B;END"}},
		{"oversized to EOF", strings.Repeat("x", 100), 10, []string{"oversized"}},
		{"oversized resync on END at EOF", "A;x=123456789012;END", 10, []string{"oversized"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := readAll(t, events.EIF, tt.in, tt.max)
			if !equal(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLines(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		want []string
	}{
		{"rfc3164", "<34>Oct 11 22:14:15 mymachine su: 'su root' failed\n", 0,
			[]string{"ev:<34>Oct 11 22:14:15 mymachine su: 'su root' failed"}},
		{"rfc5424", "<165>1 2003-10-11T22:14:15.003Z host app - ID47 - msg\r\n", 0,
			[]string{"ev:<165>1 2003-10-11T22:14:15.003Z host app - ID47 - msg"}},
		{"several and empty", "a\n\n\r\nb\r\n  \nc", 0, []string{"ev:a", "ev:b", "ev:c"}},
		{"tab kept", "a\tb\n", 0, []string{"ev:a\tb"}},
		{"trailing NUL", "a\x00\n\x00b\x00", 0, []string{"ev:a", "ev:b"}},
		{"exactly max with CRLF", "0123456789\r\nx\n", 10, []string{"ev:0123456789", "ev:x"}},
		{"oversized then resync", "0123456789A\nok\n", 10, []string{"oversized", "ev:ok"}},
		{"long oversized", strings.Repeat("y", 1000) + "\nok\n", 10, []string{"oversized", "ev:ok"}},
		{"oversized at EOF", strings.Repeat("y", 1000), 10, []string{"oversized"}},
		{"control character", "a\x1bb\nok\n", 0, []string{"malformed", "ev:ok"}},
		{"NUL inside", "a\x00b\n", 0, []string{"malformed"}},
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

// TestBufferBoundaries makes events straddle the Reader's own buffer, not only
// the source's reads.
func TestBufferBoundaries(t *testing.T) {
	for _, f := range []events.Framing{events.EIF, events.Line} {
		var in bytes.Buffer
		var want []string
		for i := 0; i < 3000; i++ {
			ev := "Class_" + strings.Repeat("v", i%97) + ";n=" + strings.Repeat("x", i%251) + ";END"
			if f == events.Line {
				ev = "line " + strings.Repeat("x", i%251)
			}
			in.WriteString(ev + "\n")
			want = append(want, "ev:"+ev)
		}
		for _, n := range []int{1, 5, 4093, 1 << 20} {
			got := collect(t, NewReader(&chunkReader{data: in.Bytes(), n: n}, f, 400))
			if !equal(got, want) {
				t.Fatalf("%s, chunks of %d: %d results, want %d", f, n, len(got), len(want))
			}
		}
	}
}

func TestBinaryGarbage(t *testing.T) {
	garbage := make([]byte, 200<<10)
	x := uint32(2463534242)
	for i := range garbage {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		garbage[i] = byte(x)
	}
	for _, f := range []events.Framing{events.EIF, events.Line} {
		done := make(chan []string, 1)
		go func() {
			done <- collect(t, NewReader(bytes.NewReader(garbage), f, 1024))
		}()
		select {
		case got := <-done:
			for _, r := range got {
				if strings.HasPrefix(r, "ev:") && strings.ContainsAny(r, "\x00\x01\x02") {
					t.Fatalf("%s: garbage accepted as an event: %q", f, r)
				}
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: reader hangs on garbage", f)
		}
	}
}

func TestReadErrorSticky(t *testing.T) {
	boom := errors.New("boom")
	rd := NewReader(io.MultiReader(strings.NewReader("a\nb"), iotest.ErrReader(boom)), events.Line, 0)
	if ev, err := rd.Next(); err != nil || string(ev) != "a" {
		t.Fatalf("Next = %q, %v", ev, err)
	}
	for i := 0; i < 2; i++ {
		if _, err := rd.Next(); !errors.Is(err, boom) {
			t.Fatalf("Next error = %v, want boom", err)
		}
	}
}

func TestNoProgress(t *testing.T) {
	rd := NewReader(iotest.ErrReader(nil), events.Line, 0)
	if _, err := rd.Next(); !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("Next error = %v, want io.ErrNoProgress", err)
	}
}

func TestUnknownFraming(t *testing.T) {
	if _, err := NewReader(strings.NewReader("x\n"), 9, 0).Next(); !errors.Is(err, events.ErrUnknownFraming) {
		t.Fatalf("Next error = %v", err)
	}
	n := 0
	for _, err := range SplitDatagram(9, []byte("x\n"), 0) {
		n++
		if !errors.Is(err, events.ErrUnknownFraming) {
			t.Fatalf("error = %v", err)
		}
	}
	if n != 1 {
		t.Fatalf("%d results, want 1", n)
	}
}
