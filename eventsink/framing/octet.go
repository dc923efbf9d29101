package framing

import (
	"bytes"
	"fmt"
)

// detectFrame decides how the event that starts at r.start is framed: an
// octet-counted frame when it starts with MSG-LEN, a space and a syslog
// PRI, else a line. It waits for more bytes while they may decide (the
// frame stays frameUnknown), except at the end of the input. A count over
// the maximum event size ends the stream with ErrFrameTooLarge (done).
func (r *Reader) detectFrame() (ev []byte, err error, done bool) {
	hdr, n, res := octetHeader(r.buf[r.start:r.end])
	switch {
	case res == octetMore && r.err == nil:
		return nil, nil, false
	case res != octetYes:
		r.frame = frameNewline
		return nil, nil, false
	case n > int64(r.max):
		r.start, r.pos, r.begun = r.end, r.end, false
		r.err = fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, r.max)
		return nil, r.err, true
	}
	r.frame, r.hdr, r.count = frameCounted, hdr, int(n)
	return nil, nil, false
}

// scanCounted returns the octet-counted frame at r.start once all of it
// is in the buffer.
func (r *Reader) scanCounted() ([]byte, error, bool) {
	end := r.start + r.hdr + r.count
	if r.end < end {
		r.pos = r.end
		return nil, nil, false
	}
	msg := r.buf[r.start+r.hdr : end]
	r.pos = end
	r.endEvent()
	// A sender may count the newline that ends its message.
	msg = bytes.TrimSuffix(msg, []byte("\n"))
	ev, err := r.checkLine(msg)
	return ev, err, true
}

// maxCountDigits bounds the MSG-LEN of an octet-counted frame; longer
// digit strings are no count (the line is taken as it is).
const maxCountDigits = 18

type octetResult uint8

const (
	octetNo   octetResult = iota // b does not start with an octet-counting header
	octetMore                    // b is the start of one; more bytes decide
	octetYes
)

// octetHeader reports whether b starts with an RFC 6587 octet-counting
// header followed by a syslog message: MSG-LEN (a digit 1-9, then
// digits), a space, then the message's PRI ("<", 1 to 3 digits, ">"). It
// returns the length of "MSG-LEN " and MSG-LEN.
func octetHeader(b []byte) (hdr int, n int64, res octetResult) {
	i := 0
	for ; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
		if i == 0 && b[i] == '0' || i == maxCountDigits {
			return 0, 0, octetNo
		}
		n = n*10 + int64(b[i]-'0')
	}
	if i == 0 && len(b) > 0 {
		return 0, 0, octetNo
	}
	// b[:i] are the digits; then " <" and 1 to 3 digits and ">".
	want := func(j int, ok func(c byte) bool) octetResult {
		switch {
		case j >= len(b):
			return octetMore
		case ok(b[j]):
			return octetYes
		}
		return octetNo
	}
	digit := func(c byte) bool { return '0' <= c && c <= '9' }
	if r := want(i, func(c byte) bool { return c == ' ' }); r != octetYes {
		return 0, 0, r
	}
	if r := want(i+1, func(c byte) bool { return c == '<' }); r != octetYes {
		return 0, 0, r
	}
	for j := i + 2; ; j++ {
		if r := want(j, func(c byte) bool { return c == '>' }); r == octetMore {
			return 0, 0, octetMore
		} else if r == octetYes {
			if j == i+2 {
				return 0, 0, octetNo // "<>"
			}
			return i + 1, n, octetYes
		}
		if !digit(b[j]) || j == i+5 {
			return 0, 0, octetNo
		}
	}
}
