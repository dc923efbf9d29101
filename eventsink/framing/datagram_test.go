package framing

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/relaychain/relaychain/events"
)

// split describes the results of SplitDatagram as collect does.
func split(t *testing.T, f events.Framing, dgram []byte, max int) []string {
	t.Helper()
	var out []string
	for ev, err := range SplitDatagram(f, dgram, max) {
		switch {
		case err == nil:
			out = append(out, "ev:"+string(ev))
		case errors.Is(err, ErrOversized):
			out = append(out, "oversized")
		case errors.Is(err, ErrMalformed):
			out = append(out, "malformed")
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
	return out
}

func TestSplitDatagram(t *testing.T) {
	tests := []struct {
		name string
		f    events.Framing
		in   string
		max  int
		want []string
	}{
		{"one EIF", events.EIF, "A;x=1;END", 0, []string{"ev:A;x=1;END"}},
		{"several EIF with NUL", events.EIF, "A;END\nB;y='q';END\x00", 0, []string{"ev:A;END", "ev:B;y='q';END"}},
		{"EIF cut", events.EIF, "A;END\nB;y=2", 0, []string{"ev:A;END", "malformed"}},
		{"EIF oversized then good", events.EIF, "A;x=123456789;END\nB;END", 10, []string{"oversized", "ev:B;END"}},
		{"syslog without newline", events.Line, "<13>Jan  1 00:00:00 h t: m", 0, []string{"ev:<13>Jan  1 00:00:00 h t: m"}},
		{"several lines", events.Line, "a\nb\r\n", 0, []string{"ev:a", "ev:b"}},
		{"line oversized", events.Line, "0123456789AB\nok", 10, []string{"oversized", "ev:ok"}},
		{"empty", events.Line, "", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := split(t, tt.f, []byte(tt.in), tt.max); !equal(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSplitDatagramStop(t *testing.T) {
	n := 0
	for range SplitDatagram(events.Line, []byte("a\nb\nc\n"), 0) {
		n++
		break
	}
	if n != 1 {
		t.Fatalf("iteration went on after break: %d", n)
	}
}

// checkEvent checks the guarantees every accepted event gives.
func checkEvent(t *testing.T, f events.Framing, ev []byte, max int) {
	t.Helper()
	if len(ev) == 0 || len(ev) > max {
		t.Fatalf("event of %d bytes, limit %d", len(ev), max)
	}
	switch f {
	case events.EIF:
		if !bytes.HasSuffix(ev, []byte("END")) || !bytes.Contains(ev, []byte(";")) {
			t.Fatalf("EIF event without ;END: %q", ev)
		}
		if bytes.ContainsAny(ev, "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x1b\x1f") {
			t.Fatalf("EIF event with control bytes: %q", ev)
		}
	case events.Line:
		if bytes.ContainsAny(ev, "\n\x00\x1b") {
			t.Fatalf("line with newline or control byte: %q", ev)
		}
	}
}

func fuzzReader(f *testing.F, fr events.Framing) {
	for _, s := range []string{
		"A;x=1;END\n", "A;msg='a;b';END B;END", "a\nb\r\n", "END", ";;;END;;", "A;x='", "\x00\xff;END",
		strings.Repeat("z", 80) + ";END",
		"11 <13>a b c d\n", "5 <13>x6 <1>abc", "3 <1>\nplain\n70 <13>", "12 <13>cut",
	} {
		f.Add([]byte(s), uint8(7))
	}
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		const max = 64
		whole := collect(t, NewReader(bytes.NewReader(in), fr, max))
		for _, r := range whole {
			if ev, ok := strings.CutPrefix(r, "ev:"); ok {
				checkEvent(t, fr, []byte(ev), max)
			}
		}
		n := int(chunk%16) + 1
		chunked := collect(t, NewReader(&chunkReader{data: in, n: n}, fr, max))
		if !equal(whole, chunked) && !endAmbiguous(string(in)) {
			t.Fatalf("one read gave %q, chunks of %d gave %q", whole, n, chunked)
		}
		// A datagram is split as a stream without octet counting is.
		plain := collect(t, newReader(bytes.NewReader(in), fr, max, false))
		dgram := split(t, fr, in, max)
		if !equal(plain, dgram) {
			t.Fatalf("reader gave %q, datagram gave %q", plain, dgram)
		}
		// Octet counting changes nothing for input that does not start a
		// frame with one.
		if fr == events.Line && !bytes.Contains(in, []byte(" <")) && !equal(whole, plain) {
			t.Fatalf("with octet counting %q, without %q", whole, plain)
		}
	})
}

func FuzzEIFReader(f *testing.F)  { fuzzReader(f, events.EIF) }
func FuzzLineReader(f *testing.F) { fuzzReader(f, events.Line) }

func FuzzSplitDatagram(f *testing.F) {
	f.Add([]byte("A;x=1;END\nB;END\x00"), true)
	f.Add([]byte("<13>a\nb"), false)
	f.Fuzz(func(t *testing.T, dgram []byte, eif bool) {
		fr := events.Line
		if eif {
			fr = events.EIF
		}
		orig := bytes.Clone(dgram)
		const max = 32
		for ev, err := range SplitDatagram(fr, dgram, max) {
			if err != nil {
				if !errors.Is(err, ErrOversized) && !errors.Is(err, ErrMalformed) {
					t.Fatalf("unexpected error %v", err)
				}
				if ev != nil {
					t.Fatalf("event %q with error %v", ev, err)
				}
				continue
			}
			checkEvent(t, fr, ev, max)
		}
		if !bytes.Equal(orig, dgram) {
			t.Fatal("SplitDatagram modified the datagram")
		}
	})
}
