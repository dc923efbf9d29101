package mux

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Wire constants. See PROTOCOL.md.
const (
	helloMagic   = "RLYC"
	ProtoVersion = 3 // the protocol version this code speaks

	maxLabel   = MaxLabelLen
	maxReason  = 255
	maxCtrlLen = 1 << 20 // largest control message body
	maxLabels  = 65535

	streamControl byte = 'C'
	streamSession byte = 'S'

	defaultHops = 32

	frameHeaderLen = 4
	frameData      = 0
	frameEnd       = 1
	frameAbort     = 2 // version 3: who aborted, before the stream ends (sessionlog.go)
	maxFrame       = 1<<24 - 1
)

// Control message types.
type ctrlType byte

const (
	ctrlWho       ctrlType = 1 // parent -> child: who is below you?
	ctrlWhoReply  ctrlType = 2 // child -> parent: my label and those below me
	ctrlTell      ctrlType = 3 // child -> parent: my label and those below me (on connect and on change)
	ctrlTellReply ctrlType = 4 // parent -> child: my label and my path to the root
	ctrlDelta     ctrlType = 5 // child -> parent: labels added and removed below me since the last TELL or delta

	// Handing a node's place over to a new process with its label
	// (handover.go); either side may send them, with no labels.
	ctrlHandover   ctrlType = 6 // a successor with my label may link beside this link; keep routing through this one
	ctrlDrain      ctrlType = 7 // route new sessions through my successor's link (dial me again if you dial)
	ctrlDrainReply ctrlType = 8 // no new session will come to you on this link
)

// maxChunk is the most labels one control message carries; a larger set
// goes as a TELL (or WHO reply) followed by deltas that add the rest.
const maxChunk = 4096

func (t ctrlType) String() string {
	switch t {
	case ctrlWho:
		return "WHO"
	case ctrlWhoReply:
		return "WHO reply"
	case ctrlTell:
		return "TELL"
	case ctrlTellReply:
		return "TELL reply"
	case ctrlDelta:
		return "TELL delta"
	case ctrlHandover:
		return "HANDOVER"
	case ctrlDrain:
		return "DRAIN"
	case ctrlDrainReply:
		return "DRAIN reply"
	}
	return fmt.Sprintf("type %d", byte(t))
}

// ctrlMsg is one control message. A delta carries Seq (1 after each TELL
// or WHO reply, then counting up), the labels added (Labels) and removed
// (Removed); the other types carry Labels only.
type ctrlMsg struct {
	Type    ctrlType
	Seq     uint32
	Labels  []string
	Removed []string

	// The served networks (PROTOCOL.md section 3): a WHO reply and a TELL
	// carry every network of the sender and below it in Nets; a delta
	// those added (Nets) and removed (NetsRemoved). WHO and TELL reply
	// carry none.
	Nets        []NetAd
	NetsRemoved []NetAd
}

func (m ctrlMsg) encode() []byte {
	size := 4 + 1 + 2
	for _, l := range m.Labels {
		size += 1 + len(l)
	}
	if m.Type == ctrlDelta {
		size += 4 + 2
		for _, l := range m.Removed {
			size += 1 + len(l)
		}
	}
	for _, ads := range [][]NetAd{m.Nets, m.NetsRemoved} {
		size += 2
		for _, a := range ads {
			size += 2 + len(a.Owner) + len(a.Network)
		}
	}
	b := make([]byte, 4, size)
	b = append(b, byte(m.Type))
	if m.Type == ctrlDelta {
		b = binary.BigEndian.AppendUint32(b, m.Seq)
	}
	b = appendLabels(b, m.Labels)
	if m.Type == ctrlDelta {
		b = appendLabels(b, m.Removed)
	}
	switch m.Type.netSections() {
	case 1:
		b = appendNets(b, m.Nets)
	case 2:
		b = appendNets(b, m.Nets)
		b = appendNets(b, m.NetsRemoved)
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func readCtrl(r io.Reader) (ctrlMsg, error) {
	var lb [4]byte
	if _, err := io.ReadFull(r, lb[:]); err != nil {
		return ctrlMsg{}, err // io.EOF here is a clean end of the stream
	}
	n := binary.BigEndian.Uint32(lb[:])
	if n < 3 || n > maxCtrlLen {
		return ctrlMsg{}, fmt.Errorf("%w: length %d", ErrBadControl, n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if err == io.EOF {
			// The stream ended after the length: a truncated message,
			// not the clean end that callers take io.EOF for.
			err = io.ErrUnexpectedEOF
		}
		return ctrlMsg{}, fmt.Errorf("%w: body: %w", ErrBadControl, err)
	}
	return decodeCtrl(body)
}

func decodeCtrl(body []byte) (ctrlMsg, error) {
	if len(body) < 3 {
		return ctrlMsg{}, fmt.Errorf("%w: short body", ErrBadControl)
	}
	m := ctrlMsg{Type: ctrlType(body[0])}
	if m.Type < ctrlWho || m.Type > ctrlDrainReply {
		return ctrlMsg{}, fmt.Errorf("%w: unknown type %d", ErrBadControl, body[0])
	}
	p := body[1:]
	if m.Type == ctrlDelta {
		if len(p) < 4 {
			return ctrlMsg{}, fmt.Errorf("%w: delta sequence truncated", ErrBadControl)
		}
		m.Seq = binary.BigEndian.Uint32(p)
		p = p[4:]
	}
	var err error
	if m.Labels, p, err = decodeLabels(p); err != nil {
		return ctrlMsg{}, err
	}
	if m.Type == ctrlDelta {
		if m.Removed, p, err = decodeLabels(p); err != nil {
			return ctrlMsg{}, err
		}
		if m.Seq == 0 {
			return ctrlMsg{}, fmt.Errorf("%w: delta with sequence 0", ErrBadControl)
		}
	}
	if k := m.Type.netSections(); k > 0 {
		if m.Nets, p, err = decodeNets(p); err != nil {
			return ctrlMsg{}, err
		}
		if k > 1 {
			if m.NetsRemoved, p, err = decodeNets(p); err != nil {
				return ctrlMsg{}, err
			}
		}
	}
	if len(p) != 0 {
		return ctrlMsg{}, fmt.Errorf("%w: %d trailing bytes", ErrBadControl, len(p))
	}
	if (m.Type == ctrlWho || m.Type >= ctrlHandover) && len(m.Labels) != 0 {
		return ctrlMsg{}, fmt.Errorf("%w: %s carries no labels", ErrBadControl, m.Type)
	}
	if (m.Type == ctrlWhoReply || m.Type == ctrlTellReply) && len(m.Labels) == 0 {
		return ctrlMsg{}, fmt.Errorf("%w: %s without the sender's label", ErrBadControl, m.Type)
	}
	return m, nil
}

// Header opens a routed session. It follows the stream type byte.
type Header struct {
	ID      uint64 // chosen by the entry, logged by every hop
	Hops    byte   // decremented by each hop; a session is refused at zero
	Origin  string // the entry node's label
	Dest    string // the destination node's label
	Service string // the service name at the destination; "" in the address form

	// The address form (PROTOCOL.md section 4): a session opened by an
	// entry that takes the destination from its client (SOCKS5, HTTP
	// CONNECT) carries the host and port the destination node dials,
	// instead of a service name.
	DestHost string // an IP address or a host name
	DestPort uint16 // 1..65535
}

// IDString is the session id as it appears in logs.
func (h Header) IDString() string { return fmt.Sprintf("%016x", h.ID) }

func (h Header) encode() []byte {
	b := make([]byte, 0, 1+8+1+3+len(h.Origin)+len(h.Dest)+len(h.Service)+3+len(h.DestHost))
	b = append(b, streamSession)
	b = binary.BigEndian.AppendUint64(b, h.ID)
	b = append(b, h.Hops)
	service := h.Service
	if h.Addressed() {
		service = "" // a service length of 0 marks the address form
	}
	for _, s := range []string{h.Origin, h.Dest, service} {
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	if h.Addressed() {
		b = append(b, byte(len(h.DestHost)))
		b = append(b, h.DestHost...)
		b = binary.BigEndian.AppendUint16(b, h.DestPort)
	}
	return b
}

// readHeader reads a header after its stream type byte.
func readHeader(r io.Reader) (Header, error) {
	var fix [9]byte
	if _, err := io.ReadFull(r, fix[:]); err != nil {
		return Header{}, fmt.Errorf("%w: %w", ErrBadHeader, err)
	}
	h := Header{ID: binary.BigEndian.Uint64(fix[:8]), Hops: fix[8]}
	var fields [3]string
	for i := range fields {
		var n [1]byte
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return Header{}, fmt.Errorf("%w: %w", ErrBadHeader, err)
		}
		b := make([]byte, n[0])
		if _, err := io.ReadFull(r, b); err != nil {
			return Header{}, fmt.Errorf("%w: %w", ErrBadHeader, err)
		}
		fields[i] = string(b)
		if i == 2 && n[0] == 0 {
			break // the address form
		}
		if err := CheckLabel(fields[i]); err != nil {
			return Header{}, fmt.Errorf("%w: field %d: %w", ErrBadHeader, i, err)
		}
	}
	h.Origin, h.Dest, h.Service = fields[0], fields[1], fields[2]
	if h.Service != "" {
		return h, nil
	}
	var n [1]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return Header{}, fmt.Errorf("%w: destination host: %w", ErrBadHeader, err)
	}
	rest := make([]byte, int(n[0])+2)
	if _, err := io.ReadFull(r, rest); err != nil {
		return Header{}, fmt.Errorf("%w: destination: %w", ErrBadHeader, err)
	}
	h.DestHost = string(rest[:n[0]])
	h.DestPort = binary.BigEndian.Uint16(rest[n[0]:])
	if err := CheckDestHost(h.DestHost); err != nil {
		return Header{}, fmt.Errorf("%w: %w", ErrBadHeader, err)
	}
	if h.DestPort == 0 {
		return Header{}, fmt.Errorf("%w: destination port 0", ErrBadHeader)
	}
	return h, nil
}

// Status is the answer to a session open.
type Status byte

const (
	StatusOK      Status = 0
	StatusNoRoute Status = 1
	StatusRefused Status = 2
	StatusDenied  Status = 3
	StatusTimeout Status = 4
	StatusFailed  Status = 5 // protocol error, limit, shutdown
	// StatusUnresolved: the destination's host name could not be resolved
	// (no such host, or its name servers failed) at the node that serves it.
	StatusUnresolved Status = 6

	statusLast = StatusUnresolved // the highest code a status may carry
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusNoRoute:
		return "no route"
	case StatusRefused:
		return "refused"
	case StatusDenied:
		return "denied"
	case StatusTimeout:
		return "timeout"
	case StatusFailed:
		return "failed"
	case StatusUnresolved:
		return "unresolved"
	}
	return fmt.Sprintf("status(%d)", byte(s))
}

func (s Status) err() error {
	switch s {
	case StatusNoRoute:
		return ErrNoRoute
	case StatusRefused:
		return ErrRefused
	case StatusDenied:
		return ErrDenied
	case StatusTimeout:
		return ErrTimeout
	case StatusFailed:
		return ErrFailed
	case StatusUnresolved:
		return ErrUnresolved
	}
	return nil
}

func encodeStatus(e *StatusError) []byte {
	reason := e.Reason
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	b := make([]byte, 0, 3+len(e.Node)+len(reason))
	b = append(b, byte(e.Code), byte(len(e.Node)))
	b = append(b, e.Node...)
	b = append(b, byte(len(reason)))
	return append(b, reason...)
}

// readStatus reads a status; it returns a *StatusError with Code StatusOK
// for success.
func readStatus(r io.Reader) (*StatusError, error) {
	var fix [2]byte
	if _, err := io.ReadFull(r, fix[:]); err != nil {
		return nil, fmt.Errorf("%w: status: %w", ErrBadHeader, err)
	}
	if fix[0] > byte(statusLast) {
		return nil, fmt.Errorf("%w: status code %d", ErrBadHeader, fix[0])
	}
	node := make([]byte, fix[1])
	if _, err := io.ReadFull(r, node); err != nil {
		return nil, fmt.Errorf("%w: status: %w", ErrBadHeader, err)
	}
	var n [1]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, fmt.Errorf("%w: status: %w", ErrBadHeader, err)
	}
	reason := make([]byte, n[0])
	if _, err := io.ReadFull(r, reason); err != nil {
		return nil, fmt.Errorf("%w: status: %w", ErrBadHeader, err)
	}
	return &StatusError{Code: Status(fix[0]), Node: string(node), Reason: string(reason)}, nil
}

func putFrameHeader(b []byte, typ byte, n int) {
	b[0] = typ
	b[1] = byte(n >> 16)
	b[2] = byte(n >> 8)
	b[3] = byte(n)
}
