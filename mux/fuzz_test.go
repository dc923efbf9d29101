// White-box (package mux): the fuzzers call the unexported decoders and
// encoders of the wire format (readHello, readCtrl, readHeader, readStatus,
// the frames a Conn reads) directly, with no node around them.
package mux

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/sirupsen/logrus"
)

// Native fuzzers for every decoder of bytes that come from the network:
// the hello and its verdict (before a link is trusted), control messages,
// the session open header and status, and the data frames a Conn reads.
//
// Each decoder must reject bad input with its sentinel error, never panic,
// and be canonical: whatever it accepts re-encodes to exactly the bytes it
// consumed, and the re-encoding decodes to the same value.
//
// Run one for a while with
//
//	go test -run '^$' -fuzz '^FuzzReadHello$' -fuzztime 30s ./mux/

func FuzzReadHello(f *testing.F) {
	for _, h := range []hello{
		{Version: ProtoVersion, Role: RoleRoot, Parent: true, Label: "epp-main"},
		{Version: ProtoVersion, Role: RoleLeaf, Label: "gwp-dmz2"},
		{Version: ProtoVersion, Role: RoleRelay, Parent: true, Label: "r"},
		{Version: 200, Role: Role(77), Label: strings.Repeat("a", maxLabel)},
	} {
		f.Add(h.encode())
	}
	for _, s := range []string{
		"",
		"RLYC",
		"RLYC\x01\x01\x02\x04root", // unknown flag
		"RLYC\x01\x01\x00\x00",     // empty label
		"RLYC\x01\x01\x00\x41" + strings.Repeat("a", 65), // label too long
		"RLYC\x01\x03\x00\x05-leaf",                      // label starts badly
		"RLYC\x01\x03\x00\x04le f",                       // bad character
		"RLYX\x01\x03\x00\x04leaf",                       // wrong magic
		"RLYC\x01\x03\x00\x08leaf",                       // truncated label
		"RLYC\x01\x03\x01\x04leaf\x00\x00trailing",       // hello, verdict, more
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", // a TLS client hello
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		h, err := readHello(r)
		if err != nil {
			if !errors.Is(err, ErrBadHello) {
				t.Fatalf("error does not match ErrBadHello: %v", err)
			}
			return
		}
		if err := CheckLabel(h.Label); err != nil {
			t.Fatalf("accepted a bad label %q: %v", h.Label, err)
		}
		used := data[:len(data)-r.Len()]
		enc := h.encode()
		if !bytes.Equal(enc, used) {
			t.Fatalf("re-encoding %+v gives %q, read %q", h, enc, used)
		}
		h2, err := readHello(bytes.NewReader(enc))
		if err != nil || h2 != h {
			t.Fatalf("round trip: %+v -> %+v, %v", h, h2, err)
		}
	})
}

func FuzzReadVerdict(f *testing.F) {
	f.Add(encodeVerdict("", true))
	f.Add(encodeVerdict("", false))
	f.Add(encodeVerdict("rejected: duplicate label: gwp-dmz2 is already connected", false))
	f.Add(encodeVerdict(strings.Repeat("x", 300), false)) // truncated to 255
	for _, s := range []string{"", "\x00", "\x02\x00", "\xff\x00", "\x01\x05abc", "\x00\x00extra"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		ok, reason, err := readVerdict(r)
		if err != nil {
			if !errors.Is(err, ErrBadHello) {
				t.Fatalf("error does not match ErrBadHello: %v", err)
			}
			return
		}
		used := data[:len(data)-r.Len()]
		enc := encodeVerdict(reason, ok)
		if !bytes.Equal(enc, used) {
			t.Fatalf("re-encoding (%v, %q) gives %q, read %q", ok, reason, enc, used)
		}
		ok2, reason2, err := readVerdict(bytes.NewReader(enc))
		if err != nil || ok2 != ok || reason2 != reason {
			t.Fatalf("round trip: (%v, %q) -> (%v, %q), %v", ok, reason, ok2, reason2, err)
		}
	})
}

// fuzzCtrlSeeds are valid control messages and malformed ones, with their
// length prefix.
func fuzzCtrlSeeds() [][]byte {
	var out [][]byte
	for _, m := range []ctrlMsg{
		{Type: ctrlWho},
		{Type: ctrlWhoReply, Labels: []string{"relay1", "gwp-a", "gwp-b"}},
		{Type: ctrlTell, Labels: []string{"relay2"}},
		{Type: ctrlTell, Labels: []string{"relay2", strings.Repeat("z", maxLabel)}},
		{Type: ctrlTellReply, Labels: []string{"relay1", "root"}},
		{Type: ctrlDelta, Seq: 1, Labels: []string{"gwp-c"}, Removed: []string{"gwp-a", "gwp-b"}},
		{Type: ctrlDelta, Seq: 1 << 31, Removed: []string{"gwp-a"}},
		{Type: ctrlDelta, Seq: 7},
		{Type: ctrlTell, Labels: []string{"gwp-a"}, Nets: []NetAd{{"gwp-a", "10.20.0.0/16"}, {"gwp-a", "*.site-a.example:22"}}},
		{Type: ctrlWhoReply, Labels: []string{"relay1", "gwp-b"}, Nets: []NetAd{{"gwp-b", "[2001:db8::/32]:8000-8100"}, {"relay1", "db.dmz1.example"}}},
		{Type: ctrlDelta, Seq: 2, Nets: []NetAd{{"gwp-c", "10.30.0.5"}}, NetsRemoved: []NetAd{{"gwp-a", "10.20.0.0/16"}}},
	} {
		out = append(out, m.encode())
	}
	raw := func(body string) []byte {
		return binary.BigEndian.AppendUint32(nil, uint32(len(body))) // length prefix
	}
	for _, body := range []string{
		"",                                     // length below 3
		"\x01\x00",                             // short
		"\x01\x00\x01\x04root",                 // WHO with a label
		"\x02\x00\x00",                         // WHO reply without labels
		"\x04\x00\x00",                         // TELL reply without labels
		"\x09\x00\x00",                         // unknown type
		"\x06\x00\x01\x04root",                 // HANDOVER with a label
		"\x07\x00\x00",                         // DRAIN
		"\x05\x00\x00",                         // delta, sequence truncated
		"\x05\x00\x00\x00\x00\x00\x00\x00\x00", // delta with sequence 0
		"\x05\x00\x00\x00\x01\x00\x00",         // delta without its removed count
		"\x05\x00\x00\x00\x01\x00\x00\x00\x02\x01a", // removed count above what is there
		"\x00\x00\x00",                                  // type zero
		"\x03\x00\x02\x04root",                          // count above what is there
		"\x03\x00\x01\x04root\x00",                      // trailing byte
		"\x03\x00\x01\x00",                              // empty label
		"\x03\x00\x01\x05ro ot",                         // bad character
		"\x03\xff\xff\x01a",                             // huge count
		"\x03\x00\x01\x09root",                          // label runs past the end
		"\x03\x00\x02\x01a\x01b\x01c",                   // three labels, count two
		"\x03\x00\x01\x01a\x00\x01\x01a\x0b10.0.0.1/16", // network not in canonical form
		"\x03\x00\x01\x01a\x00\x01\x01a\x0810.0.0.0",    // network truncated
		"\x03\x00\x01\x01a\x00\x01\x01a\x03a..",         // bad host name
		"\x03\x00\x01\x01a\x00\x02\x01a\x01b",           // count above what is there
	} {
		out = append(out, append(raw(body), body...))
	}
	out = append(out, []byte{0, 0}, []byte{0x00, 0x10, 0x00, 0x01, 3}, []byte{0xff, 0xff, 0xff, 0xff})
	return out
}

func FuzzReadCtrl(f *testing.F) {
	for _, s := range fuzzCtrlSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		m, err := readCtrl(r)
		if err != nil {
			switch {
			case len(data) == 0:
				if err != io.EOF {
					t.Fatalf("empty input: want io.EOF (a clean end), got %v", err)
				}
			case len(data) < 4:
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("truncated length: want io.ErrUnexpectedEOF, got %v", err)
				}
			case !errors.Is(err, ErrBadControl):
				t.Fatalf("error does not match ErrBadControl: %v", err)
			case errors.Is(err, io.EOF):
				t.Fatalf("a bad message looks like a clean end: %v", err)
			}
			return
		}
		fuzzCheckCtrl(t, m, data[:len(data)-r.Len()])
	})
}

func FuzzDecodeCtrl(f *testing.F) {
	for _, s := range fuzzCtrlSeeds() {
		if len(s) >= 4 {
			f.Add(s[4:])
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := decodeCtrl(body)
		if err != nil {
			if !errors.Is(err, ErrBadControl) {
				t.Fatalf("error does not match ErrBadControl: %v", err)
			}
			return
		}
		used := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
		fuzzCheckCtrl(t, m, append(used, body...))
	})
}

// fuzzCheckCtrl checks that an accepted control message is well formed and
// re-encodes to the bytes it came from.
func fuzzCheckCtrl(t *testing.T, m ctrlMsg, used []byte) {
	t.Helper()
	for i, l := range m.Labels {
		if err := CheckLabel(l); err != nil {
			t.Fatalf("label %d accepted: %v", i, err)
		}
	}
	switch m.Type {
	case ctrlWho, ctrlHandover, ctrlDrain, ctrlDrainReply:
		if len(m.Labels) != 0 {
			t.Fatalf("%s with labels accepted: %v", m.Type, m.Labels)
		}
	case ctrlWhoReply, ctrlTellReply:
		if len(m.Labels) == 0 {
			t.Fatalf("%s without labels accepted", m.Type)
		}
	case ctrlTell:
	case ctrlDelta:
		if m.Seq == 0 {
			t.Fatal("a delta with sequence 0 accepted")
		}
		for i, l := range m.Removed {
			if err := CheckLabel(l); err != nil {
				t.Fatalf("removed label %d accepted: %v", i, err)
			}
		}
	default:
		t.Fatalf("unknown type %d accepted", m.Type)
	}
	if m.Type != ctrlDelta && (m.Seq != 0 || m.Removed != nil || m.NetsRemoved != nil) {
		t.Fatalf("%s with a sequence or removed labels: %+v", m.Type, m)
	}
	if m.Type.netSections() == 0 && m.Nets != nil {
		t.Fatalf("%s with networks: %+v", m.Type, m)
	}
	for _, a := range append(append([]NetAd(nil), m.Nets...), m.NetsRemoved...) {
		n, err := ParseNetwork(a.Network)
		if err != nil || n.String() != a.Network || CheckLabel(a.Owner) != nil {
			t.Fatalf("network %v accepted: %v", a, err)
		}
	}
	enc := m.encode()
	if !bytes.Equal(enc, used) {
		t.Fatalf("re-encoding %+v gives %q, read %q", m, enc, used)
	}
	m2, err := readCtrl(bytes.NewReader(enc))
	if err != nil || m2.Type != m.Type || m2.Seq != m.Seq || strings.Join(m2.Labels, "\n") != strings.Join(m.Labels, "\n") ||
		strings.Join(m2.Removed, "\n") != strings.Join(m.Removed, "\n") ||
		fmt.Sprint(m2.Nets) != fmt.Sprint(m.Nets) || fmt.Sprint(m2.NetsRemoved) != fmt.Sprint(m.NetsRemoved) {
		t.Fatalf("round trip: %+v -> %+v, %v", m, m2, err)
	}
}

func FuzzReadHeader(f *testing.F) {
	for _, h := range []Header{
		{ID: 0x0123456789abcdef, Hops: defaultHops, Origin: "gwp-dmz2", Dest: "epp-main", Service: "gateway"},
		{ID: 1, Hops: 0, Origin: "a", Dest: "b", Service: "c"},
		{ID: ^uint64(0), Hops: 255, Origin: strings.Repeat("o", maxLabel), Dest: strings.Repeat("d", maxLabel), Service: strings.Repeat("s", maxLabel)},
		{ID: 2, Hops: defaultHops, Origin: "epp-main", Dest: "gwp-a", DestHost: "10.20.0.5", DestPort: 22},
		{ID: 3, Hops: defaultHops, Origin: "epp-main", Dest: "gwp-a", DestHost: "2001:db8::1", DestPort: 443},
		{ID: 4, Hops: 1, Origin: "gwp-a", Dest: "epp-main", DestHost: "db.site-a.example", DestPort: 65535},
	} {
		f.Add(h.encode()[1:]) // readHeader starts after the stream type byte
	}
	for _, s := range []string{
		"",
		"\x00\x00\x00\x00\x00\x00\x00\x01",     // short fixed part
		"\x00\x00\x00\x00\x00\x00\x00\x01\x20", // no fields
		"\x00\x00\x00\x00\x00\x00\x00\x01\x20\x00\x01b\x01c",                                // empty origin
		"\x00\x00\x00\x00\x00\x00\x00\x01\x20\x01a\x01b\x05c",                               // truncated service
		"\x00\x00\x00\x00\x00\x00\x00\x01\x20\x01a\x01b\x02c/",                              // bad character
		"\x00\x00\x00\x00\x00\x00\x00\x01\x20\x41" + strings.Repeat("a", 65) + "\x01b\x01c", // too long
		"\x00\x00\x00\x00\x00\x00\x00\x01\x20\x01a\x01b\x01cDATA",                           // header, then bytes
		"\x00\x00\x00\x00\x00\x00\x00\x01\x20\x01a\x01b\x00\x0810.0.0.1\x00\x00",            // address form, port 0
		"\x00\x00\x00\x00\x00\x00\x00\x01\x20\x01a\x01b\x00\x0810.0.0.1\x00",                // address form, port truncated
		"\x00\x00\x00\x00\x00\x00\x00\x01\x20\x01a\x01b\x00\x00\x00\x16",                    // address form, empty host
		"\x00\x00\x00\x00\x00\x00\x00\x01\x20\x01a\x01b\x00\x04a b.\x00\x16",                // address form, bad host
		"\x00\x00\x00\x00\x00\x00\x00\x01\x20\x01a\x01b\x00\x0bfe80::1%eth\x00\x16",         // address form, zone
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		h, err := readHeader(r)
		if err != nil {
			if !errors.Is(err, ErrBadHeader) {
				t.Fatalf("error does not match ErrBadHeader: %v", err)
			}
			return
		}
		fields := []string{h.Origin, h.Dest, h.Service}
		if h.Addressed() {
			fields = fields[:2]
			if h.Service != "" || CheckDestHost(h.DestHost) != nil || h.DestPort == 0 {
				t.Fatalf("address form accepted: %+v", h)
			}
		}
		for i, s := range fields {
			if err := CheckLabel(s); err != nil {
				t.Fatalf("field %d accepted: %v", i, err)
			}
		}
		used := data[:len(data)-r.Len()]
		enc := h.encode()
		if enc[0] != streamSession || !bytes.Equal(enc[1:], used) {
			t.Fatalf("re-encoding %+v gives %q, read %q", h, enc, used)
		}
		h2, err := readHeader(bytes.NewReader(enc[1:]))
		if err != nil || h2 != h {
			t.Fatalf("round trip: %+v -> %+v, %v", h, h2, err)
		}
	})
}

func FuzzReadStatus(f *testing.F) {
	for _, se := range []*StatusError{
		{Code: StatusOK, Node: "epp-main"},
		{Code: StatusNoRoute, Node: "root", Reason: "nowhere is unknown to the root root"},
		{Code: StatusRefused, Node: "leaf", Reason: "dial hash: connection refused"},
		{Code: StatusDenied, Node: "leaf"},
		{Code: StatusTimeout, Node: "relay1", Reason: strings.Repeat("r", 300)}, // truncated to 255
		{Code: StatusFailed, Node: "", Reason: "hop limit reached"},
		{Code: StatusUnresolved, Node: "gwp-a", Reason: "resolve x.example: no such host"},
	} {
		f.Add(encodeStatus(se))
	}
	for _, s := range []string{"", "\x00", "\x06\x00\x00", "\x07\x00\x00", "\xff\x00\x00", "\x00\x04ro", "\x00\x04root", "\x00\x04root\x03ab", "\x00\x00\x00DATA"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		se, err := readStatus(r)
		if err != nil {
			if se != nil || !errors.Is(err, ErrBadHeader) {
				t.Fatalf("status %v, error does not match ErrBadHeader: %v", se, err)
			}
			return
		}
		if se.Code > StatusUnresolved {
			t.Fatalf("unknown code %d accepted", se.Code)
		}
		if (se.Code == StatusOK) != (se.Code.err() == nil) {
			t.Fatalf("code %d: ok and err() disagree", se.Code)
		}
		if se.Code != StatusOK && !errors.Is(se, se.Code.err()) {
			t.Fatalf("%v does not match its sentinel", se)
		}
		used := data[:len(data)-r.Len()]
		enc := encodeStatus(se)
		if !bytes.Equal(enc, used) {
			t.Fatalf("re-encoding %+v gives %q, read %q", se, enc, used)
		}
		se2, err := readStatus(bytes.NewReader(enc))
		if err != nil || *se2 != *se {
			t.Fatalf("round trip: %+v -> %+v, %v", se, se2, err)
		}
	})
}

// fuzzFrameModel is what a Conn must make of a byte stream that then ends with
// a FIN: the payload bytes it delivers (a truncated last data frame
// included) and whether it ends cleanly, which it does only when an end
// frame of length zero stands at a frame boundary.
func fuzzFrameModel(data []byte) (payload []byte, clean bool) {
	for {
		if len(data) < frameHeaderLen {
			return payload, false
		}
		n := int(data[1])<<16 | int(data[2])<<8 | int(data[3])
		typ := data[0]
		data = data[frameHeaderLen:]
		switch typ {
		case frameData:
			if n > len(data) {
				n = len(data)
			}
			payload = append(payload, data[:n]...)
			data = data[n:]
		case frameEnd:
			return payload, n == 0
		default:
			return payload, false
		}
	}
}

func fuzzDataFrame(p string) []byte {
	b := make([]byte, frameHeaderLen, frameHeaderLen+len(p))
	putFrameHeader(b, frameData, len(p))
	return append(b, p...)
}

func fuzzFrames(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

var fuzzEndFrame = []byte{frameEnd, 0, 0, 0}

// fuzzStreamPair is a yamux client and server over net.Pipe; the fuzz
// target opens one stream per input. Closed when the fuzz test ends.
type fuzzStreamPair struct {
	cli, srv *yamux.Session
}

func newFuzzStreamPair(tb testing.TB) *fuzzStreamPair {
	tb.Helper()
	lg := logrus.New()
	lg.SetOutput(io.Discard)
	lg.SetLevel(logrus.PanicLevel)
	tun := DefaultTuning()
	cfg := tun.yamuxConfig(yamuxLogger{logrus.NewEntry(lg)})
	cfg.EnableKeepAlive = false
	a, b := net.Pipe()
	cli, err := yamux.Client(a, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := yamux.Server(b, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = cli.Close()
		_ = srv.Close()
	})
	return &fuzzStreamPair{cli: cli, srv: srv}
}

// maxFuzzStream keeps a fuzz input within yamux's initial stream window,
// so the writer never waits for the reader.
const maxFuzzStream = 128 << 10

func FuzzConnRead(f *testing.F) {
	seeds := [][]byte{
		nil,
		fuzzEndFrame,
		fuzzFrames(fuzzDataFrame("hello"), fuzzEndFrame),
		fuzzFrames(fuzzDataFrame(""), fuzzDataFrame("x"), fuzzDataFrame(strings.Repeat("y", 3000)), fuzzEndFrame),
		fuzzFrames(fuzzDataFrame("abc")),                                             // FIN without an end frame
		fuzzFrames(fuzzDataFrame("abc"), []byte{frameData, 0, 0, 10}, []byte("abc")), // truncated frame
		fuzzFrames(fuzzDataFrame("abc"), []byte{frameEnd, 0, 0, 1}),                  // end frame with a length
		fuzzFrames(fuzzDataFrame("abc"), []byte{2, 0, 0, 0}),                         // unknown type
		fuzzFrames(fuzzDataFrame("abc"), fuzzEndFrame, []byte("trailing bytes")),
		fuzzFrames(fuzzDataFrame("abc"), []byte{frameEnd, 0}), // end frame cut short
		{frameData, 0xff, 0xff, 0xff, 1, 2, 3},                // largest frame, truncated
		fuzzFrames(fuzzEndFrame, fuzzDataFrame("after the end")),
	}
	for _, s := range seeds {
		f.Add(s, uint16(4096))
		f.Add(s, uint16(1))
	}
	p := newFuzzStreamPair(f)
	f.Fuzz(func(t *testing.T, data []byte, readSize uint16) {
		if len(data) > maxFuzzStream {
			return
		}
		want, clean := fuzzFrameModel(data)
		cs, err := p.cli.OpenStream()
		if err != nil {
			t.Fatalf("open stream: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ss, err := p.srv.AcceptStreamWithContext(ctx)
		if err != nil {
			t.Fatalf("accept stream: %v", err)
		}
		// The writer never blocks: the data fits in the stream window,
		// and the server's receive loop buffers it.
		if _, err := cs.Write(data); err != nil {
			t.Fatalf("write: %v", err)
		}
		if err := cs.Close(); err != nil { // FIN
			t.Fatalf("close: %v", err)
		}
		c := newConn(nil, ss, Header{}, nil)
		defer c.Close()
		start := time.Now()
		_ = ss.SetReadDeadline(start.Add(5 * time.Second)) // a hang shows as a failure, not a stuck fuzzer
		buf := make([]byte, int(readSize)%(8<<10)+1)
		var got []byte
		for {
			n, err := c.Read(buf)
			if n < 0 || n > len(buf) {
				t.Fatalf("read returned %d for a %d-byte buffer", n, len(buf))
			}
			got = append(got, buf[:n]...)
			if err == nil {
				if n == 0 {
					t.Fatalf("read returned 0 bytes and no error")
				}
				continue
			}
			if time.Since(start) > 4*time.Second {
				t.Fatalf("read hung until the deadline: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("read %d bytes %q, want %d bytes %q", len(got), fuzzTrim(got), len(want), fuzzTrim(want))
			}
			if clean {
				if err != io.EOF {
					t.Fatalf("end frame present: want io.EOF, got %v", err)
				}
			} else {
				if err == io.EOF || errors.Is(err, io.EOF) || !errors.Is(err, ErrAborted) {
					t.Fatalf("no end frame: want an error matching ErrAborted, got %v", err)
				}
			}
			// The result is sticky.
			if n2, err2 := c.Read(buf); n2 != 0 || err2 != err {
				t.Fatalf("second read: %d, %v; first: %v", n2, err2, err)
			}
			return
		}
	})
}

func fuzzTrim(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
