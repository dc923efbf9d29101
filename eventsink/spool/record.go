package spool

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"time"

	"github.com/relaychain/relaychain/events"
)

const (
	headerSize = 8              // body length + CRC
	bodyFixed  = 8 + 8 + 1 + 2  // seq, time, framing, source length
	maxBody    = 64<<20 + 65535 // hard bound when decoding, whatever the options
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Record is one spooled event.
type Record struct {
	Seq     uint64
	Time    time.Time // when the spool received the event
	Framing events.Framing
	Source  string
	Data    []byte
}

// size returns the record's size on disk.
func recordSize(source string, data []byte) int64 {
	return headerSize + bodyFixed + int64(len(source)) + int64(len(data))
}

// appendRecord appends the encoded record to dst.
func appendRecord(dst []byte, seq uint64, t time.Time, framing events.Framing, source string, data []byte) []byte {
	bodyLen := bodyFixed + len(source) + len(data)
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(bodyLen))
	dst = append(dst, 0, 0, 0, 0) // CRC, below
	dst = binary.LittleEndian.AppendUint64(dst, seq)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(t.UnixNano()))
	dst = append(dst, byte(framing))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(source)))
	dst = append(dst, source...)
	dst = append(dst, data...)
	crc := crc32.Checksum(dst[start+headerSize:], castagnoli)
	binary.LittleEndian.PutUint32(dst[start+4:], crc)
	return dst
}

// errTorn reports a record that is cut short or damaged.
type errTorn struct{ why string }

func (e errTorn) Error() string { return "torn record: " + e.why }

// readHeader reads a record header and checks the body length.
func readHeader(r io.Reader, hdr []byte) (bodyLen int, crc uint32, err error) {
	if _, err := io.ReadFull(r, hdr[:headerSize]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return 0, 0, errTorn{"short header"}
		}
		return 0, 0, err
	}
	n := binary.LittleEndian.Uint32(hdr)
	if n < bodyFixed || n > maxBody {
		return 0, 0, errTorn{fmt.Sprintf("bad length %d", n)}
	}
	return int(n), binary.LittleEndian.Uint32(hdr[4:]), nil
}

// decodeBody checks and decodes a record body. The record's Source and Data
// are copies.
func decodeBody(body []byte, crc uint32) (Record, error) {
	if crc32.Checksum(body, castagnoli) != crc {
		return Record{}, errTorn{"CRC mismatch"}
	}
	srcLen := int(binary.LittleEndian.Uint16(body[17:]))
	if bodyFixed+srcLen > len(body) {
		return Record{}, errTorn{"bad source length"}
	}
	rest := body[bodyFixed:]
	return Record{
		Seq:     binary.LittleEndian.Uint64(body),
		Time:    time.Unix(0, int64(binary.LittleEndian.Uint64(body[8:]))),
		Framing: events.Framing(body[16]),
		Source:  string(rest[:srcLen]),
		Data:    append([]byte(nil), rest[srcLen:]...),
	}, nil
}

// readRecord reads one record. It returns io.EOF at a clean end, errTorn for
// a damaged or short record, or the read error.
func readRecord(r io.Reader, hdr []byte, body *[]byte) (Record, int64, error) {
	n, crc, err := readHeader(r, hdr)
	if err != nil {
		return Record{}, 0, err
	}
	if cap(*body) < n {
		*body = make([]byte, n)
	}
	b := (*body)[:n]
	if _, err := io.ReadFull(r, b); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return Record{}, 0, errTorn{"short body"}
		}
		return Record{}, 0, err
	}
	rec, err := decodeBody(b, crc)
	return rec, headerSize + int64(n), err
}
