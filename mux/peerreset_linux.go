//go:build linux

package mux

import (
	"encoding/binary"
	"fmt"
	"net"
	"syscall"
)

// tcpClose is Linux's TCP_CLOSE, the state of a socket after a reset (a
// socket whose peer only half-closed is in CLOSE_WAIT).
const tcpClose = 7

// resetByPeer tells, after a read from c returned io.EOF while this side
// has not shut its write side, whether that end is in fact the peer's
// reset: Linux reports a reset (ECONNRESET) once, to the first read or
// write that comes, and when a write took it, the reads that follow see
// a plain end of stream. The socket's state tells the two apart: a FIN
// leaves it in CLOSE_WAIT, a reset in CLOSE. It returns nil for a FIN, or
// when c is not a TCP socket whose state can be read.
func resetByPeer(c net.Conn) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	state := -1
	_ = rc.Control(func(fd uintptr) {
		// The first bytes of struct tcp_info: tcpi_state first.
		v, err := syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_INFO)
		if err != nil {
			return
		}
		var b [4]byte
		binary.NativeEndian.PutUint32(b[:], uint32(v))
		state = int(b[0])
	})
	if state != tcpClose {
		return nil
	}
	return fmt.Errorf("read: %w (reported to the write side)", syscall.ECONNRESET)
}
