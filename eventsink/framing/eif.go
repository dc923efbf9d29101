package framing

import "fmt"

// States of the EIF scanner.
const (
	sFieldStart = iota // at the start of a field, white space is skipped
	sE                 // field so far is "E"
	sEN                // field so far is "EN"
	sEnd               // field so far is "END": the next byte decides
	sName              // in the class or an attribute name
	sNameTrail         // white space after a name
	sValueStart        // after '=', white space is skipped
	sValue             // in an unquoted value
	sQuoted            // in a quoted value
	sQuoteEnd          // after a quote inside a quoted value
)

// eifScanner is the state of the scan of one EIF event. It checks the event's
// shape while it looks for the END token.
type eifScanner struct {
	state   int
	quote   byte   // the quote of a quoted value
	first   bool   // the current field is the class
	nameLen int    // bytes of the current name
	bad     string // the first problem found, "" if none
}

// step consumes one byte. The caller handles sEnd before calling step.
func (s *eifScanner) step(c byte) {
	if c < 0x20 && c != '\t' && c != '\r' && c != '\n' {
		s.fail(fmt.Sprintf("control character 0x%02x", c))
	}
	for {
		switch s.state {
		case sFieldStart:
			switch {
			case isSpace(c):
			case c == ';':
				if s.first {
					s.fail("empty class")
					s.first = false
				}
			case c == 'E':
				s.state, s.nameLen = sE, 1
			default:
				s.state, s.nameLen = sName, 0
				continue
			}
		case sE, sEN:
			want := byte('N')
			if s.state == sEN {
				want = 'D'
			}
			if c != want {
				s.state = sName
				continue
			}
			s.state++
			s.nameLen++
		case sName, sNameTrail:
			switch {
			case c == ';':
				s.endName()
				if !s.first {
					s.fail("attribute without '='")
				}
				s.first = false
				s.state = sFieldStart
			case c == '=':
				s.endName()
				if s.first {
					s.fail("missing class")
					s.first = false
				}
				s.state = sValueStart
			case isSpace(c):
				s.state = sNameTrail
			case c == '\'' || c == '"':
				s.fail("quote in a name")
			default:
				if s.state == sNameTrail {
					s.fail("white space in a name")
					s.state = sName
				}
				s.nameLen++
			}
		case sValueStart:
			switch {
			case c == ' ' || c == '\t':
			case c == '\'' || c == '"':
				s.state, s.quote = sQuoted, c
			case c == ';':
				s.state = sFieldStart
			default:
				s.state = sValue
			}
		case sValue:
			if c == ';' {
				s.state = sFieldStart
			}
		case sQuoted:
			if c == s.quote {
				s.state = sQuoteEnd
			}
		case sQuoteEnd:
			if c == s.quote {
				s.state = sQuoted // a doubled quote stands for itself
			} else {
				s.state = sValue
				continue
			}
		}
		return
	}
}

// endName checks the name that just ended.
func (s *eifScanner) endName() {
	if s.nameLen == 0 {
		if s.first {
			s.fail("empty class")
		} else {
			s.fail("empty attribute name")
		}
	}
	s.nameLen = 0
}

func (s *eifScanner) fail(why string) {
	if s.bad == "" {
		s.bad = why
	}
}

// rawEnd finds the `;END` token without regard to quotes; it is used to
// resynchronise after an oversized event.
type rawEnd uint8

const (
	rawNone rawEnd = iota
	rawSemi        // after ';' and optional white space
	rawE
	rawEN
	rawEND
)

// step consumes c and reports whether c is the byte after a complete
// terminator (c itself is not part of the event).
func (s *rawEnd) step(c byte) bool {
	found := *s == rawEND && !isNameByte(c) && c != '='
	switch {
	case c == ';':
		*s = rawSemi
	case *s == rawSemi && isSpace(c):
	case *s == rawSemi && c == 'E':
		*s = rawE
	case *s == rawE && c == 'N':
		*s = rawEN
	case *s == rawEN && c == 'D':
		*s = rawEND
	default:
		*s = rawNone
	}
	return found
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// isEventSep reports the bytes skipped between EIF events.
func isEventSep(c byte) bool { return isSpace(c) || c == 0 || c == ';' }

// isNameByte reports the bytes that continue a name after "END".
func isNameByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
