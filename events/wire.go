package events

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/relaychain/relaychain/mux"
)

// Protocol constants. See PROTOCOL.md.
const (
	Version = 1

	typeBatch = 1
	typeAck   = 2

	headerLen = 6 // version, type, u32 body length
	ackLen    = 8

	// MaxLabelLen bounds the sink label: a sink label is a node label
	// (mux.CheckLabel).
	MaxLabelLen = mux.MaxLabelLen
	// MaxSourceLen bounds an event's source.
	MaxSourceLen = 255
	// EventOverhead is the encoded size of an event beyond its source and data.
	EventOverhead = 8 + 8 + 1 + 1 + 4
	// batchOverhead is the fixed part of a batch body beyond the label.
	batchOverhead = 1 + 4
)

// Default limits.
const (
	DefaultMaxBatchBytes = 4 << 20
	DefaultMaxEvents     = 1024
)

// Event is one event in a batch.
type Event struct {
	Seq     uint64    // the sink's sequence number, > 0, increasing within a batch
	Time    time.Time // when the sink received it; zero if unknown
	Framing Framing   // EIF or Line
	Source  string    // the sender's address, at most MaxSourceLen bytes
	Data    []byte    // the event, without terminator
}

// Batch is a group of events of one sink.
type Batch struct {
	Sink   string // the sink's label
	Events []Event
}

// Ack acknowledges every event of the sink up to and including UpTo.
type Ack struct {
	UpTo uint64
}

// Limits bound a batch. Zero fields mean the defaults.
type Limits struct {
	// MaxBatchBytes bounds the encoded batch body. Zero means
	// DefaultMaxBatchBytes (4 MiB).
	MaxBatchBytes int
	// MaxEvents bounds the events of a batch. Zero means DefaultMaxEvents
	// (1024).
	MaxEvents int
}

func (l Limits) withDefaults() Limits {
	if l.MaxBatchBytes <= 0 {
		l.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if l.MaxEvents <= 0 {
		l.MaxEvents = DefaultMaxEvents
	}
	return l
}

// BodyLen returns the size of b's encoded body, which Limits.MaxBatchBytes
// bounds. A forwarder adds events while BodyLen stays within the limit.
func (b *Batch) BodyLen() int {
	n := batchOverhead + len(b.Sink)
	for i := range b.Events {
		n += EventOverhead + len(b.Events[i].Source) + len(b.Events[i].Data)
	}
	return n
}

// LastSeq returns the sequence number of the last event, 0 if none.
func (b *Batch) LastSeq() uint64 {
	if len(b.Events) == 0 {
		return 0
	}
	return b.Events[len(b.Events)-1].Seq
}

// checkLabel checks a sink label against the project's one label rule,
// mux.CheckLabel.
func checkLabel(s string) error {
	if err := mux.CheckLabel(s); err != nil {
		return fmt.Errorf("%w: %w", ErrBadLabel, err)
	}
	return nil
}

// CheckEvent checks one event as DecodeBatch does, against the sequence
// number of the event before it in its batch (0 for the first). It returns
// an ErrMalformed error.
func CheckEvent(e *Event, prev uint64) error {
	switch {
	case e.Seq <= prev:
		return fmt.Errorf("%w: sequence %d after %d", ErrMalformed, e.Seq, prev)
	case len(e.Source) > MaxSourceLen:
		return fmt.Errorf("%w: source of %d bytes", ErrMalformed, len(e.Source))
	case len(e.Data) == 0:
		return fmt.Errorf("%w: empty event %d", ErrMalformed, e.Seq)
	}
	switch e.Framing {
	case Line:
		if bytes.IndexByte(e.Data, '\n') >= 0 {
			return fmt.Errorf("%w: line event %d contains a newline", ErrMalformed, e.Seq)
		}
	case EIF:
		if !bytes.HasSuffix(e.Data, []byte("END")) {
			return fmt.Errorf("%w: EIF event %d does not end in END", ErrMalformed, e.Seq)
		}
	default:
		return fmt.Errorf("%w: event %d of unknown framing %d", ErrMalformed, e.Seq, e.Framing)
	}
	return nil
}

// check checks a batch before encoding it.
func (b *Batch) check(lim Limits) error {
	if err := checkLabel(b.Sink); err != nil {
		return err
	}
	if len(b.Events) == 0 {
		return fmt.Errorf("%w: empty batch", ErrMalformed)
	}
	if len(b.Events) > lim.MaxEvents {
		return fmt.Errorf("%w: %d, limit %d", ErrTooManyEvents, len(b.Events), lim.MaxEvents)
	}
	if n := b.BodyLen(); n > lim.MaxBatchBytes {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n, lim.MaxBatchBytes)
	}
	var prev uint64
	for i := range b.Events {
		if err := CheckEvent(&b.Events[i], prev); err != nil {
			return err
		}
		prev = b.Events[i].Seq
	}
	return nil
}

// AppendBatch appends the message carrying b to dst. It checks b as
// DecodeBatch would.
func AppendBatch(dst []byte, b *Batch, lim Limits) ([]byte, error) {
	lim = lim.withDefaults()
	if err := b.check(lim); err != nil {
		return dst, err
	}
	dst = append(dst, Version, typeBatch)
	dst = binary.BigEndian.AppendUint32(dst, uint32(b.BodyLen()))
	dst = append(dst, byte(len(b.Sink)))
	dst = append(dst, b.Sink...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(b.Events)))
	for i := range b.Events {
		e := &b.Events[i]
		var t int64
		if !e.Time.IsZero() {
			t = e.Time.UnixNano()
		}
		dst = binary.BigEndian.AppendUint64(dst, e.Seq)
		dst = binary.BigEndian.AppendUint64(dst, uint64(t))
		dst = append(dst, byte(e.Framing), byte(len(e.Source)))
		dst = append(dst, e.Source...)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(e.Data)))
		dst = append(dst, e.Data...)
	}
	return dst, nil
}

// AppendAck appends the message carrying a to dst.
func AppendAck(dst []byte, a Ack) []byte {
	dst = append(dst, Version, typeAck)
	dst = binary.BigEndian.AppendUint32(dst, ackLen)
	return binary.BigEndian.AppendUint64(dst, a.UpTo)
}

// parseHeader checks a message header and returns the body length.
func parseHeader(h []byte, want byte, lim Limits) (int, error) {
	if h[0] != Version {
		return 0, fmt.Errorf("%w: %d", ErrVersion, h[0])
	}
	if h[1] != want {
		return 0, fmt.Errorf("%w: %d, want %d", ErrUnexpectedType, h[1], want)
	}
	n := binary.BigEndian.Uint32(h[2:])
	switch {
	case want == typeAck && n != ackLen:
		return 0, fmt.Errorf("%w: ack of %d bytes", ErrMalformed, n)
	case want == typeBatch && n > uint32(lim.MaxBatchBytes):
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n, lim.MaxBatchBytes)
	}
	return int(n), nil
}

// DecodeBatch decodes a whole batch message (header and body). The events'
// Data alias frame.
func DecodeBatch(frame []byte, lim Limits) (*Batch, error) {
	lim = lim.withDefaults()
	if len(frame) < headerLen {
		return nil, fmt.Errorf("%w: short header", ErrMalformed)
	}
	n, err := parseHeader(frame, typeBatch, lim)
	if err != nil {
		return nil, err
	}
	if len(frame)-headerLen != n {
		return nil, fmt.Errorf("%w: body of %d bytes, header says %d", ErrMalformed, len(frame)-headerLen, n)
	}
	return decodeBatchBody(frame[headerLen:], lim)
}

// decoder reads fields from a body and remembers the first shortfall.
type decoder struct {
	b     []byte
	short bool
}

func (d *decoder) take(n int) []byte {
	if d.short || n > len(d.b) {
		d.short = true
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8() byte {
	if v := d.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if v := d.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if v := d.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func decodeBatchBody(body []byte, lim Limits) (*Batch, error) {
	d := decoder{b: body}
	label := d.take(int(d.u8()))
	count := d.u32()
	if d.short {
		return nil, fmt.Errorf("%w: batch cut short", ErrMalformed)
	}
	b := &Batch{Sink: string(label)}
	if err := checkLabel(b.Sink); err != nil {
		return nil, err
	}
	if count == 0 {
		return nil, fmt.Errorf("%w: empty batch", ErrMalformed)
	}
	if count > uint32(lim.MaxEvents) {
		return nil, fmt.Errorf("%w: %d, limit %d", ErrTooManyEvents, count, lim.MaxEvents)
	}
	if uint64(count)*EventOverhead > uint64(len(d.b)) {
		return nil, fmt.Errorf("%w: %d events cannot fit in %d bytes", ErrMalformed, count, len(d.b))
	}
	b.Events = make([]Event, count)
	var prev uint64
	for i := range b.Events {
		e := &b.Events[i]
		e.Seq = d.u64()
		if t := int64(d.u64()); t != 0 {
			e.Time = time.Unix(0, t)
		}
		e.Framing = Framing(d.u8())
		e.Source = string(d.take(int(d.u8())))
		e.Data = d.take(int(d.u32()))
		if d.short {
			return nil, fmt.Errorf("%w: event %d cut short", ErrMalformed, i)
		}
		if err := CheckEvent(e, prev); err != nil {
			return nil, err
		}
		prev = e.Seq
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(d.b))
	}
	return b, nil
}

// DecodeAck decodes a whole ack message.
func DecodeAck(frame []byte) (Ack, error) {
	if len(frame) < headerLen {
		return Ack{}, fmt.Errorf("%w: short header", ErrMalformed)
	}
	if _, err := parseHeader(frame, typeAck, Limits{}); err != nil {
		return Ack{}, err
	}
	if len(frame) != headerLen+ackLen {
		return Ack{}, fmt.Errorf("%w: ack of %d bytes", ErrMalformed, len(frame))
	}
	return Ack{UpTo: binary.BigEndian.Uint64(frame[headerLen:])}, nil
}

// WriteBatch writes b to w in one Write.
func WriteBatch(w io.Writer, b *Batch, lim Limits) error {
	msg, err := AppendBatch(nil, b, lim)
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("write batch: %w", err)
	}
	return nil
}

// WriteAck writes a to w in one Write.
func WriteAck(w io.Writer, a Ack) error {
	if _, err := w.Write(AppendAck(nil, a)); err != nil {
		return fmt.Errorf("write ack: %w", err)
	}
	return nil
}

// readMessage reads a header of type want and its body. It returns io.EOF
// when the stream ends cleanly before a message.
func readMessage(r io.Reader, want byte, lim Limits) ([]byte, error) {
	var h [headerLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("read message header: %w", err)
	}
	n, err := parseHeader(h[:], want, lim)
	if err != nil {
		return nil, err
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read message body: %w", err)
	}
	return body, nil
}

// ReadBatch reads one batch message from r. It returns io.EOF when r ends
// cleanly between messages. The body is allocated only after its length was
// checked against lim.
func ReadBatch(r io.Reader, lim Limits) (*Batch, error) {
	lim = lim.withDefaults()
	body, err := readMessage(r, typeBatch, lim)
	if err != nil {
		return nil, err
	}
	return decodeBatchBody(body, lim)
}

// ReadAck reads one ack message from r. It returns io.EOF when r ends
// cleanly between messages.
func ReadAck(r io.Reader) (Ack, error) {
	body, err := readMessage(r, typeAck, Limits{})
	if err != nil {
		return Ack{}, err
	}
	return Ack{UpTo: binary.BigEndian.Uint64(body)}, nil
}
