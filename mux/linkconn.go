package mux

import (
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
type coalesceConn struct {
	net.Conn
	hdr  [yamuxHeaderLen]byte
	held bool
}

func (c *coalesceConn) Write(p []byte) (int, error) {
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
