package events

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// sampleBatch returns a batch with both framings.
func sampleBatch(t *testing.T) *Batch {
	t.Helper()
	return &Batch{Sink: "es-dmz1", Events: []Event{
		{Seq: 7, Time: time.Unix(1700000000, 123), Framing: EIF, Source: "10.1.2.3:5140", Data: []byte("TEC_Event;msg='a;b';END")},
		{Seq: 9, Framing: Line, Source: "[2001:db8::1]:514", Data: []byte("<13>Jan  1 00:00:00 host app: hello")},
	}}
}

func TestBatchRoundTrip(t *testing.T) {
	b := sampleBatch(t)
	msg, err := AppendBatch(nil, b, Limits{})
	if err != nil {
		t.Fatalf("AppendBatch: %v", err)
	}
	if len(msg) != headerLen+b.BodyLen() {
		t.Fatalf("message of %d bytes, BodyLen %d", len(msg), b.BodyLen())
	}
	got, err := DecodeBatch(msg, Limits{})
	if err != nil {
		t.Fatalf("DecodeBatch: %v", err)
	}
	checkSame(t, got, b)
	// The same over a stream, two messages back to back.
	var buf bytes.Buffer
	for i := 0; i < 2; i++ {
		if err := WriteBatch(&buf, b, Limits{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 2; i++ {
		got, err := ReadBatch(&buf, Limits{})
		if err != nil {
			t.Fatalf("ReadBatch %d: %v", i, err)
		}
		checkSame(t, got, b)
	}
	if _, err := ReadBatch(&buf, Limits{}); err != io.EOF {
		t.Fatalf("ReadBatch at the end = %v, want io.EOF", err)
	}
}

func checkSame(t *testing.T, got, want *Batch) {
	t.Helper()
	if got.Sink != want.Sink || len(got.Events) != len(want.Events) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range got.Events {
		g, w := got.Events[i], want.Events[i]
		if g.Seq != w.Seq || !g.Time.Equal(w.Time) || g.Framing != w.Framing || g.Source != w.Source || !bytes.Equal(g.Data, w.Data) {
			t.Fatalf("event %d: got %+v, want %+v", i, g, w)
		}
	}
}

func TestAckRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteAck(&buf, Ack{UpTo: 1<<63 + 5}); err != nil {
		t.Fatal(err)
	}
	raw := bytes.Clone(buf.Bytes())
	a, err := ReadAck(&buf)
	if err != nil || a.UpTo != 1<<63+5 {
		t.Fatalf("ReadAck = %+v, %v", a, err)
	}
	if a, err := DecodeAck(raw); err != nil || a.UpTo != 1<<63+5 {
		t.Fatalf("DecodeAck = %+v, %v", a, err)
	}
	if _, err := ReadBatch(bytes.NewReader(raw), Limits{}); !errors.Is(err, ErrUnexpectedType) {
		t.Fatalf("ReadBatch of an ack = %v, want ErrUnexpectedType", err)
	}
	if _, err := ReadAck(bytes.NewReader(raw[:10])); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("ReadAck cut short = %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestBounds(t *testing.T) {
	big := func(n int) []byte { return []byte(strings.Repeat("x", n)) }
	tests := []struct {
		name   string
		mutate func(b *Batch)
		lim    Limits
		want   error
	}{
		{"empty label", func(b *Batch) { b.Sink = "" }, Limits{}, ErrBadLabel},
		{"long label", func(b *Batch) { b.Sink = strings.Repeat("l", MaxLabelLen+1) }, Limits{}, ErrBadLabel},
		{"label with space", func(b *Batch) { b.Sink = "a b" }, Limits{}, ErrBadLabel},
		{"too many events", func(b *Batch) {}, Limits{MaxEvents: 1}, ErrTooManyEvents},
		{"too large", func(b *Batch) { b.Events[1].Data = big(200) }, Limits{MaxBatchBytes: 200}, ErrTooLarge},
		{"empty batch", func(b *Batch) { b.Events = nil }, Limits{}, ErrMalformed},
		{"seq not increasing", func(b *Batch) { b.Events[1].Seq = 7 }, Limits{}, ErrMalformed},
		{"seq zero", func(b *Batch) { b.Events[0].Seq = 0 }, Limits{}, ErrMalformed},
		{"unknown framing", func(b *Batch) { b.Events[0].Framing = 9 }, Limits{}, ErrMalformed},
		{"line with newline", func(b *Batch) { b.Events[1].Data = []byte("a\nb") }, Limits{}, ErrMalformed},
		{"EIF without END", func(b *Batch) { b.Events[0].Data = []byte("A;x=1;") }, Limits{}, ErrMalformed},
		{"empty event", func(b *Batch) { b.Events[1].Data = nil }, Limits{}, ErrMalformed},
		{"long source", func(b *Batch) { b.Events[0].Source = string(big(MaxSourceLen + 1)) }, Limits{}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := sampleBatch(t)
			tt.mutate(b)
			if _, err := AppendBatch(nil, b, tt.lim); !errors.Is(err, tt.want) {
				t.Fatalf("AppendBatch = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	good, err := AppendBatch(nil, sampleBatch(t), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	withBody := func(f func(m []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name string
		msg  []byte
		lim  Limits
		want error
	}{
		{"bad version", withBody(func(m []byte) []byte { m[0] = 9; return m }), Limits{}, ErrVersion},
		{"unknown type", withBody(func(m []byte) []byte { m[1] = 7; return m }), Limits{}, ErrUnexpectedType},
		{"over MaxBatchBytes", good, Limits{MaxBatchBytes: 50}, ErrTooLarge},
		{"over MaxEvents", good, Limits{MaxEvents: 1}, ErrTooManyEvents},
		{"trailing byte", withBody(func(m []byte) []byte {
			m = append(m, 0)
			m[5]++
			return m
		}), Limits{}, ErrMalformed},
		{"length mismatch", withBody(func(m []byte) []byte { return m[:len(m)-1] }), Limits{}, ErrMalformed},
		{"huge count", withBody(func(m []byte) []byte {
			i := headerLen + 1 + len("es-dmz1")
			copy(m[i:], []byte{0, 0, 3, 0})
			return m
		}), Limits{MaxEvents: 1 << 20}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeBatch(tt.msg, tt.lim); !errors.Is(err, tt.want) {
				t.Fatalf("DecodeBatch = %v, want %v", err, tt.want)
			}
			if _, err := ReadBatch(bytes.NewReader(tt.msg), tt.lim); !errors.Is(err, tt.want) &&
				!(tt.name == "length mismatch" && errors.Is(err, io.ErrUnexpectedEOF)) {
				t.Fatalf("ReadBatch = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestReadBatchDoesNotTrustLength checks a header claiming a huge body is
// refused before anything is allocated or read.
func TestReadBatchDoesNotTrustLength(t *testing.T) {
	msg := []byte{Version, typeBatch, 0xff, 0xff, 0xff, 0xff}
	if _, err := ReadBatch(bytes.NewReader(msg), Limits{}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("ReadBatch = %v, want ErrTooLarge", err)
	}
}

func FuzzDecodeBatch(f *testing.F) {
	good, _ := AppendBatch(nil, &Batch{Sink: "s", Events: []Event{{Seq: 1, Framing: Line, Source: "a", Data: []byte("x")}}}, Limits{})
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte{Version, typeBatch, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, msg []byte) {
		lim := Limits{MaxBatchBytes: 1 << 16, MaxEvents: 64}
		b, err := DecodeBatch(msg, lim)
		sb, serr := ReadBatch(bytes.NewReader(msg), lim)
		if err != nil {
			if b != nil {
				t.Fatal("batch with error")
			}
			return
		}
		if serr != nil {
			t.Fatalf("DecodeBatch accepted what ReadBatch refused: %v", serr)
		}
		checkSame(t, sb, b)
		again, err := AppendBatch(nil, b, lim)
		if err != nil {
			t.Fatalf("decoded batch does not encode: %v", err)
		}
		if !bytes.Equal(again, msg) {
			t.Fatal("decoded batch encodes differently")
		}
	})
}

func FuzzDecodeAck(f *testing.F) {
	f.Add(AppendAck(nil, Ack{UpTo: 42}))
	f.Add([]byte{Version, typeAck, 0, 0, 0, 8, 1})
	f.Fuzz(func(t *testing.T, msg []byte) {
		a, err := DecodeAck(msg)
		sa, serr := ReadAck(bytes.NewReader(msg))
		if err != nil {
			return
		}
		if serr != nil || sa != a {
			t.Fatalf("ReadAck = %v, %v; DecodeAck = %v", sa, serr, a)
		}
		if !bytes.Equal(AppendAck(nil, a), msg) {
			t.Fatal("ack encodes differently")
		}
	})
}
