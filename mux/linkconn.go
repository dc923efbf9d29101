package mux

import (
	"crypto/tls"
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
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
// full record (copied into rec) and the rest of the body follows; and since
// crypto/tls writes each record (at most 16 KiB) to the socket on its own,
// the records of up to tlsBatchLen bytes of a frame are gathered under the
// TLS connection (recordBatchConn) and leave in one write.
type coalesceConn struct {
	net.Conn
	in, out atomic.Uint64 // bytes yamux read and wrote on the link
	hdr     [yamuxHeaderLen]byte
	held    bool
	rec     []byte           // TLS only: one record's worth of plaintext
	batch   *recordBatchConn // TLS only: the socket under the TLS connection
}

// tlsRecordLen is the largest TLS record's plaintext.
const tlsRecordLen = 16 << 10

// tlsBatchLen is the plaintext whose records leave in one write to the
// socket: sixteen full records; a tail of less than a record joins the
// last batch, so that a frame of the splice's read size (bigSize) and its
// header are one write. Four records (64 KiB) a write cost a tenth more
// CPU per GB through the real chain on TLS (docs/PERFORMANCE.md).
const tlsBatchLen = 16 * tlsRecordLen

func newCoalesceConn(c net.Conn) *coalesceConn {
	cc := &coalesceConn{Conn: c}
	if tc, ok := c.(*tls.Conn); ok {
		cc.rec = make([]byte, 0, tlsRecordLen)
		cc.batch, _ = tc.NetConn().(*recordBatchConn)
	}
	return cc
}

// Read reads from the link and counts the bytes.
func (c *coalesceConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(uint64(n))
	return n, err
}

// Write writes p to the link (see coalesceConn) and counts the bytes.
func (c *coalesceConn) Write(p []byte) (int, error) {
	n, err := c.write(p)
	c.out.Add(uint64(n))
	return n, err
}

func (c *coalesceConn) write(p []byte) (int, error) {
	if c.held && c.rec != nil {
		c.held = false
		return c.writeTLS(p)
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

// writeTLS writes the held header and its body p to the TLS connection:
// the header and the start of the body in one full record, then the rest
// in full records; tlsBatchLen bytes of plaintext at a time go to the
// socket in one write when the connection has a recordBatchConn.
func (c *coalesceConn) writeTLS(p []byte) (int, error) {
	sent := 0 // of p, in batches written
	for first := true; first || sent < len(p); first = false {
		end := sent + tlsBatchLen
		if first {
			end -= yamuxHeaderLen
		}
		if len(p)-end < tlsRecordLen {
			end = len(p)
		}
		if c.batch != nil {
			c.batch.hold()
		}
		var err error
		if first {
			k := min(end, tlsRecordLen-yamuxHeaderLen)
			rec := append(append(c.rec[:0], c.hdr[:]...), p[:k]...)
			if _, err = c.Conn.Write(rec); err == nil && k < end {
				_, err = c.Conn.Write(p[k:end])
			}
		} else {
			_, err = c.Conn.Write(p[sent:end])
		}
		if c.batch != nil {
			if ferr := c.batch.release(); err == nil {
				err = ferr
			}
		}
		if err != nil {
			return sent, err
		}
		sent = end
	}
	return sent, nil
}

// recordBatchConn is the socket under a link's TLS connection. While the
// link's writer holds it (hold, then release), the records crypto/tls
// writes are gathered and release writes them in one write. Any other
// write passes through, except one made while a batch is held or being
// written (a TLS alert from Close, a key update answered by the reader):
// that one joins the batch, so that records never interleave and a Close
// does not wait behind a write to a peer that has stopped reading (the
// socket's close ends that write). The first write error is returned by
// every later write, as crypto/tls does. The batch's buffer is borrowed
// from a pool only while a batch is held: an idle link holds none.
type recordBatchConn struct {
	net.Conn
	mu  sync.Mutex
	on  bool    // a batch is held or being written
	buf *[]byte // the records gathered, nil when none
	err error
}

// tlsRecordOverhead is what TLS 1.3 adds to a record's plaintext: the
// record header (5), the content type (1) and the AEAD tag (16).
const tlsRecordOverhead = 5 + 1 + 16

// batchBufs holds the buffers of recordBatchConn: a batch's records, up
// to seventeen with the tail.
var batchBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, tlsBatchLen+tlsRecordLen+(tlsBatchLen/tlsRecordLen+1)*tlsRecordOverhead)
	return &b
}}

func newRecordBatchConn(c net.Conn) *recordBatchConn { return &recordBatchConn{Conn: c} }

func (c *recordBatchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if err := c.err; err != nil {
		c.mu.Unlock()
		return 0, err
	}
	if c.on {
		if c.buf == nil {
			c.buf = batchBufs.Get().(*[]byte)
		}
		*c.buf = append(*c.buf, p...)
		c.mu.Unlock()
		return len(p), nil
	}
	c.mu.Unlock()
	// Only crypto/tls writes here, one record at a time under its own
	// lock, and a batch is held only around its writes: nothing else
	// writes to the socket now.
	n, err := c.Conn.Write(p)
	if err != nil {
		c.mu.Lock()
		if c.err == nil {
			c.err = err
		}
		c.mu.Unlock()
	}
	return n, err
}

// hold starts gathering records.
func (c *recordBatchConn) hold() {
	c.mu.Lock()
	c.on = true
	c.mu.Unlock()
}

// release writes the records gathered since hold, and those that join
// while it writes, and ends the batch.
func (c *recordBatchConn) release() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.buf != nil {
		out := c.buf
		c.buf = nil
		if c.err == nil {
			c.mu.Unlock()
			_, err := c.Conn.Write(*out)
			c.mu.Lock()
			if err != nil && c.err == nil {
				c.err = err
			}
		}
		*out = (*out)[:0]
		batchBufs.Put(out)
	}
	c.on = false
	return c.err
}
