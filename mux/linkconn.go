package mux

import (
	"crypto/tls"
	"encoding/binary"
	"net"
)

// yamux's frame header (v0.1.2): version, type, flags (2), stream id (4),
// length (4). A data frame is type 0.
const (
	yamuxHeaderLen = 12
	yamuxTypeData  = 0
)

// coalesceConn is the connection of a link as yamux sees it. yamux writes
// each frame as two writes from its send loop, the 12-byte header and then
// the body; coalesceConn holds back the header of a data frame with a body
// and sends it with the body in one writev, which halves the write system
// calls of a link. Only yamux's send loop writes to a link, one write at a
// time, so no lock is needed. Reads and everything else pass through.
//
// On TLS there is no writev: two writes would be two records, the header
// alone in one. There the header goes out with the start of the body in one
// full record (copied into rec) and the rest of the body follows.
type coalesceConn struct {
	net.Conn
	hdr  [yamuxHeaderLen]byte
	held bool
	rec  []byte // TLS only: one record's worth of plaintext
}

// tlsRecordLen is the largest TLS record's plaintext.
const tlsRecordLen = 16 << 10

func newCoalesceConn(c net.Conn) *coalesceConn {
	cc := &coalesceConn{Conn: c}
	if _, ok := c.(*tls.Conn); ok {
		cc.rec = make([]byte, 0, tlsRecordLen)
	}
	return cc
}

func (c *coalesceConn) Write(p []byte) (int, error) {
	if c.held && c.rec != nil {
		c.held = false
		k := min(len(p), tlsRecordLen-yamuxHeaderLen)
		rec := append(append(c.rec[:0], c.hdr[:]...), p[:k]...)
		if _, err := c.Conn.Write(rec); err != nil {
			return 0, err
		}
		if k == len(p) {
			return k, nil
		}
		n, err := c.Conn.Write(p[k:])
		return k + n, err
	}
	if c.held {
		c.held = false
		bufs := net.Buffers{c.hdr[:], p}
		n, err := bufs.WriteTo(c.Conn)
		n -= yamuxHeaderLen
		if n < 0 {
			n = 0
		}
		return int(n), err
	}
	if len(p) == yamuxHeaderLen && p[1] == yamuxTypeData && binary.BigEndian.Uint32(p[8:]) > 0 {
		copy(c.hdr[:], p)
		c.held = true
		return len(p), nil
	}
	return c.Conn.Write(p)
}
