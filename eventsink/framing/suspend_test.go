package framing

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/relaychain/relaychain/events"
)

// stopAt returns data in reads of at most n bytes up to byte k, then the
// error a read deadline gives, as a connection whose reads are stopped.
type stopAt struct {
	data []byte
	k, n int
}

func (s *stopAt) Read(p []byte) (int, error) {
	if s.k == 0 {
		return 0, os.ErrDeadlineExceeded
	}
	n := min(s.n, len(p), s.k)
	copy(p, s.data[:n])
	s.data, s.k = s.data[n:], s.k-n
	return n, nil
}

// collectUntil is collect, for a reader stopped by a read deadline.
func collectUntil(t *testing.T, rd *Reader) []string {
	t.Helper()
	return collectTo(t, rd, os.ErrDeadlineExceeded)
}

// TestSuspendResume stops a reader after every byte of streams in both
// framings (events, separators, oversized events being skipped,
// octet-counted frames, malformed events), carries its State through JSON
// into a new Reader on the rest of the stream, and checks that the two
// together return exactly what one reader of the whole stream returns.
func TestSuspendResume(t *testing.T) {
	const max = 40
	long := strings.Repeat("x", 3*max)
	cases := []struct {
		name string
		f    events.Framing
		in   string
	}{
		{"eif", events.EIF, "Cls;a=1;END\n;Cls;b='q;END';END\n\n Cls;c=3;END"},
		{"eif oversized", events.EIF, "Cls;a=1;END\nCls;msg='" + long + "';END\nCls;b=2;END\n"},
		{"eif oversized raw end", events.EIF, "Cls;m=" + long + "; END\nCls;b=2;END\n"},
		{"eif malformed", events.EIF, "=x;END\nCls;ok=1;END\n"},
		{"lines", events.Line, "one\ntwo\r\n\n\x00three\nfour"},
		{"lines oversized", events.Line, "a\n" + long + "\nb\n"},
		{"lines counted", events.Line, "11 <13>hello w\n12 <13>1 second\nplain line\n9 <1>x\ny\nend\n"},
		{"lines malformed", events.Line, "ok\nbad\x01x\nok2\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			whole := collect(t, NewReader(strings.NewReader(tc.in), tc.f, max))
			if len(whole) < 2 {
				t.Fatalf("the stream gives %v: too few results to test anything", whole)
			}
			for k := 0; k <= len(tc.in); k++ {
				for _, chunk := range []int{1, 7, len(tc.in) + 1} {
					a := NewReader(&stopAt{data: []byte(tc.in), k: k, n: chunk}, tc.f, max)
					got := collectUntil(t, a)
					st, ok := a.Suspend()
					if !ok {
						t.Fatalf("split at %d, reads of %d: not resumable", k, chunk)
					}
					enc, err := json.Marshal(st)
					if err != nil {
						t.Fatal(err)
					}
					var back State
					if err := json.Unmarshal(enc, &back); err != nil {
						t.Fatal(err)
					}
					b, err := Resume(strings.NewReader(tc.in[k:]), tc.f, max, back)
					if err != nil {
						t.Fatalf("split at %d: Resume: %v", k, err)
					}
					got = append(got, collect(t, b)...)
					if !reflect.DeepEqual(got, whole) {
						t.Fatalf("split at %d, reads of %d (state %s):\n got %q\nwant %q", k, chunk, enc, got, whole)
					}
				}
			}
		})
	}
}

// TestSuspendRefused: a reader at the end of its input, or stopped at a
// frame too large to skip, or not stopped at all, cannot be resumed; a
// State too large or with an invalid terminator state is refused.
func TestSuspendRefused(t *testing.T) {
	rd := NewReader(strings.NewReader("a\n"), events.Line, 10)
	if _, ok := rd.Suspend(); ok {
		t.Error("a reader that was never stopped was suspended")
	}
	collect(t, rd)
	if _, ok := rd.Suspend(); ok {
		t.Error("a reader at the end of its input was suspended")
	}
	rd = NewReader(strings.NewReader("99 <13>x"), events.Line, 10)
	if _, err := rd.Next(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("Next = %v, want ErrFrameTooLarge", err)
	}
	if _, ok := rd.Suspend(); ok {
		t.Error("a reader stopped at a frame too large was suspended")
	}
	if _, err := Resume(io.MultiReader(), events.Line, 10, State{Pending: make([]byte, 1<<20)}); err == nil {
		t.Error("Resume took 1 MiB of pending bytes for events of 10")
	}
	if _, err := Resume(io.MultiReader(), events.EIF, 10, State{Discard: true, Raw: 9}); err == nil {
		t.Error("Resume took an invalid terminator state")
	}
}
