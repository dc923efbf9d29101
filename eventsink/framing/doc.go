// Package framing splits the byte streams and datagrams that event sources send
// to the eventsink into single events.
//
// Two framings exist (events.Framing, whose values travel with every event
// and are kept in the spool), chosen per listener:
//
//   - EIF: EIF-style events, `Class;attr=value;...;END`. Each event ends with the
//     token END, which is a field of its own: it follows a `;` (optionally after
//     white space) and is not followed by a letter, digit, `_` or `=` (so an
//     attribute named ENDPOINT is not mistaken for the terminator). A newline
//     after END is allowed but not required. Values may be quoted with ' or ";
//     inside quotes a `;` is not a separator and a doubled quote stands for
//     itself. White space, NUL bytes and stray `;` between events are skipped.
//     An event is returned as-is, from the first byte of the class to the D of
//     END inclusive.
//   - Line: newline-delimited lines (syslog RFC 3164/5424 lines or plain text).
//     A trailing "\r" is removed, empty lines are skipped, a last line without
//     "\n" at the end of the stream or datagram is an event. On a stream
//     (NewReader, not SplitDatagram: a datagram holds its message whole,
//     RFC 5426), an event may also come octet-counted, as syslog senders frame
//     messages over TCP (RFC 6587; rsyslog, syslog-ng, logger --octet-count):
//     `MSG-LEN SP MSG`, where MSG-LEN is a decimal count of the octets of MSG
//     without leading zero. A frame is taken as octet-counted when it starts
//     with digits, a space and a syslog PRI (`<`, one to three digits, `>`),
//     so `106 <13>1 2026-...` is a frame and `404 <html>` a line; each frame
//     decides for itself, so both framings may be mixed on one connection.
//     The event is MSG, without a newline the sender may have counted in; a
//     newline inside MSG makes it malformed (an event is one line). A
//     MSG-LEN over the maximum event size is ErrFrameTooLarge: the stream
//     cannot be followed past it, and the Reader stops there.
//
// Every event is bounded by a maximum size. An event longer than that is
// reported with ErrOversized and skipped: the Reader resynchronises on the next
// terminator (for EIF, a raw `;END` search that ignores quotes, so an unbalanced
// quote cannot swallow the rest of the stream) and goes on. An event that is
// complete but not well formed (control characters other than tab, CR and LF
// (LF only inside EIF events), an empty or invalid class, an attribute without
// `=`, an event cut by the end of the stream) is reported with ErrMalformed.
// Both are per-event errors: the caller logs, counts and calls Next again.
//
// When END is the last byte currently available, the Reader does not wait for
// the next byte to decide whether it is the terminator: it takes it as one, so
// an adapter that sends `...;END` without a newline and keeps the connection
// open sees its event received at once.
//
// Typical usage on a TCP connection:
//
//	rd := framing.NewReader(conn, events.EIF, 64<<10)
//	for {
//		ev, err := rd.Next()
//		switch {
//		case err == nil:
//			store(ev) // ev is valid until the next call to Next
//		case errors.Is(err, framing.ErrOversized), errors.Is(err, framing.ErrMalformed):
//			log(err) // one bad event; keep reading
//		case errors.Is(err, io.EOF):
//			return // clean end
//		default:
//			return // read error
//		}
//	}
//
// and on a UDP datagram:
//
//	for ev, err := range framing.SplitDatagram(events.Line, dgram, 64<<10) {
//		...
//	}
package framing
