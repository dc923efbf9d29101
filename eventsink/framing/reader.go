package framing

import (
	"bytes"
	"fmt"
	"io"

	"github.com/relaychain/relaychain/events"
)

// DefaultMaxEvent is the maximum event size used when none is given.
const DefaultMaxEvent = 64 << 10

// minRead is the free space the Reader keeps for each read from the source.
const minRead = 16 << 10

// maxEmptyReads bounds the reads that return neither data nor an error.
const maxEmptyReads = 100

// Reader reads events of one framing from a byte stream. It is not safe for
// concurrent use. The Reader does not close the underlying reader.
type Reader struct {
	r       io.Reader
	framing events.Framing
	max     int

	buf   []byte
	start int // first byte of the current event (or of unscanned input)
	pos   int // next byte to scan
	end   int // end of valid data in buf
	err   error

	begun   bool // leading separators of the current event were skipped
	discard bool // skipping the rest of an oversized event
	eif     eifScanner
	raw     rawEnd

	// Line framing: octet counting (RFC 6587) is recognised on streams,
	// never in datagrams.
	counting bool
	frame    lineFrame // how the current line event is framed
	hdr      int       // an octet-counted frame: the length of "MSG-LEN "
	count    int       // and MSG-LEN
}

// lineFrame is how one event of the Line framing is delimited.
type lineFrame uint8

const (
	frameUnknown lineFrame = iota // not decided: the frame's first bytes are awaited
	frameNewline                  // ends at a newline
	frameCounted                  // "MSG-LEN SP MSG", MSG-LEN octets of MSG
)

// NewReader returns a Reader of events of framing f (events.EIF or
// events.Line) from r, each at most maxEvent bytes long (DefaultMaxEvent
// when maxEvent <= 0). In the Line framing it takes octet-counted frames
// (RFC 6587) as well as lines; see the package documentation.
func NewReader(r io.Reader, f events.Framing, maxEvent int) *Reader {
	return newReader(r, f, maxEvent, f == events.Line)
}

// newReader is NewReader; counting says whether octet-counted frames are
// recognised.
func newReader(r io.Reader, f events.Framing, maxEvent int, counting bool) *Reader {
	if maxEvent <= 0 {
		maxEvent = DefaultMaxEvent
	}
	// A pending event is at most max+1 bytes, or an octet-counted header
	// (at most maxCountDigits+1 bytes) and max bytes.
	return &Reader{r: r, framing: f, max: maxEvent, buf: make([]byte, maxEvent+2+maxCountDigits+minRead), counting: counting}
}

// Next returns the next event. The slice is valid until the next call to Next.
//
// ErrOversized and ErrMalformed (wrapped, with a short reason) report one
// rejected event: the caller may call Next again. At the end of the stream Next
// returns io.EOF; a read error is returned as is; an octet-counted frame
// longer than the maximum event size is ErrFrameTooLarge. These are sticky:
// once the source failed, every later call returns the same error. Complete
// events that were read before the error are returned first.
func (r *Reader) Next() ([]byte, error) {
	if !r.framing.Valid() {
		return nil, fmt.Errorf("%w: %d", events.ErrUnknownFraming, r.framing)
	}
	empty := 0
	for {
		if r.discard {
			if r.skip() {
				r.discard = false
				continue
			}
		} else if ev, err, done := r.scan(); done {
			return ev, err
		}
		// All available bytes are scanned: read more.
		if r.err != nil {
			return r.atEnd()
		}
		n := r.fill()
		if n == 0 && r.err == nil {
			if empty++; empty >= maxEmptyReads {
				r.err = io.ErrNoProgress
			}
		}
	}
}

// atEnd handles the end of the input (r.err is set, everything is scanned).
func (r *Reader) atEnd() ([]byte, error) {
	if r.discard && r.err == io.EOF {
		r.discard = false
		r.start = r.pos
	}
	if !r.begun || r.err != io.EOF {
		return nil, r.err
	}
	ev := r.buf[r.start:r.pos]
	r.endEvent()
	if r.framing == events.Line && r.frame == frameCounted {
		return nil, fmt.Errorf("%w: octet-counted frame cut by the end of input (%d of %d bytes)",
			ErrMalformed, max(len(ev)-r.hdr, 0), r.count)
	}
	if r.framing == events.Line {
		if blankLine(ev) {
			return nil, r.err
		}
		return r.checkLine(ev)
	}
	return nil, fmt.Errorf("%w: unterminated event at end of input (%d bytes)", ErrMalformed, len(ev))
}

// fill compacts the buffer and reads once from the source.
func (r *Reader) fill() int {
	if r.start > 0 && len(r.buf)-r.end < minRead {
		copy(r.buf, r.buf[r.start:r.end])
		r.pos -= r.start
		r.end -= r.start
		r.start = 0
	}
	if r.end == len(r.buf) {
		// Cannot happen: a pending event fits (see newReader). Be safe.
		r.err = fmt.Errorf("framing: buffer full")
		return 0
	}
	n, err := r.r.Read(r.buf[r.end:])
	if n < 0 || n > len(r.buf)-r.end {
		n, err = 0, fmt.Errorf("framing: invalid read count %d", n)
	}
	r.end += n
	if err != nil {
		r.err = err
	}
	return n
}

// endEvent forgets the current event: the bytes up to r.pos are consumed.
func (r *Reader) endEvent() {
	r.start = r.pos
	r.begun = false
	r.raw = 0
}

// oversized starts skipping the rest of the current event.
func (r *Reader) oversized() error {
	r.start = r.pos
	r.begun = false
	r.discard = true
	return fmt.Errorf("%w: longer than %d bytes", ErrOversized, r.max)
}

// scan looks for the next event in the available bytes. done is false when
// more bytes are needed.
func (r *Reader) scan() (ev []byte, err error, done bool) {
	if r.framing == events.Line {
		return r.scanLine()
	}
	return r.scanEIF()
}

// skip discards bytes up to and including the next terminator. It reports
// whether the terminator was found.
func (r *Reader) skip() bool {
	defer func() { r.start = r.pos }()
	if r.framing == events.Line {
		i := bytes.IndexByte(r.buf[r.pos:r.end], '\n')
		if i < 0 {
			r.pos = r.end
			return false
		}
		r.pos += i + 1
		return true
	}
	for r.pos < r.end {
		if r.raw.step(r.buf[r.pos]) {
			r.raw = 0
			return true
		}
		r.pos++
	}
	if r.raw == rawEND {
		// END is the last byte available: take it as the terminator.
		r.raw = 0
		return true
	}
	return false
}

// scanLine implements scan for the Line framing.
func (r *Reader) scanLine() ([]byte, error, bool) {
	for {
		if !r.begun {
			for r.pos < r.end && r.buf[r.pos] == 0 {
				r.pos++
			}
			r.start = r.pos
			if r.pos == r.end {
				return nil, nil, false
			}
			r.begun = true
			r.frame = frameNewline
			if r.counting {
				r.frame = frameUnknown
			}
		}
		if r.frame == frameUnknown {
			if ev, err, done := r.detectFrame(); done || r.frame == frameUnknown {
				return ev, err, done
			}
		}
		if r.frame == frameCounted {
			return r.scanCounted()
		}
		i := bytes.IndexByte(r.buf[r.pos:r.end], '\n')
		if i < 0 {
			r.pos = r.end
			if r.pos-r.start > r.max+1 {
				return nil, r.oversized(), true
			}
			return nil, nil, false
		}
		line := r.buf[r.start : r.pos+i]
		r.pos += i + 1
		r.endEvent()
		if blankLine(line) {
			continue
		}
		ev, err := r.checkLine(line)
		return ev, err, true
	}
}

// blankLine reports a line that is skipped: empty or only white space and NULs.
func blankLine(line []byte) bool { return len(bytes.TrimRight(line, " \t\r\x00")) == 0 }

// checkLine trims and validates one complete line.
func (r *Reader) checkLine(line []byte) ([]byte, error) {
	line = bytes.TrimRight(line, "\r\x00")
	if len(line) > r.max {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrOversized, len(line), r.max)
	}
	for i, c := range line {
		if c < 0x20 && c != '\t' && c != '\r' {
			return nil, fmt.Errorf("%w: control character 0x%02x at offset %d", ErrMalformed, c, i)
		}
	}
	return line, nil
}

// scanEIF implements scan for the EIF framing.
func (r *Reader) scanEIF() ([]byte, error, bool) {
	if !r.begun {
		for r.pos < r.end && isEventSep(r.buf[r.pos]) {
			r.pos++
		}
		r.start = r.pos
		if r.pos == r.end {
			return nil, nil, false
		}
		r.begun = true
		r.raw = 0
		r.eif = eifScanner{state: sFieldStart, first: true}
	}
	for r.pos < r.end {
		c := r.buf[r.pos]
		if r.eif.state == sEnd {
			if !isNameByte(c) && c != '=' {
				ev, err := r.finishEIF()
				return ev, err, true
			}
			r.eif.state = sName // "END..." is the start of a name
		}
		if r.pos-r.start >= r.max {
			return nil, r.oversized(), true
		}
		r.raw.step(c)
		r.eif.step(c)
		r.pos++
	}
	if r.eif.state == sEnd {
		// END is the last byte available: take it as the terminator.
		ev, err := r.finishEIF()
		return ev, err, true
	}
	return nil, nil, false
}

// finishEIF returns the event that ends at r.pos.
func (r *Reader) finishEIF() ([]byte, error) {
	ev := r.buf[r.start:r.pos]
	r.endEvent()
	switch {
	case r.eif.bad != "":
		return nil, fmt.Errorf("%w: %s", ErrMalformed, r.eif.bad)
	case r.eif.first:
		return nil, fmt.Errorf("%w: missing class", ErrMalformed)
	}
	return ev, nil
}
