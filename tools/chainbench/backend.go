package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// The backend's protocol. A client sends a header: one op byte and a
// big-endian uint64 argument. The backend answers readyByte at once, so
// that the client knows the session reaches it through the system under
// test, then:
//
//   - opUpload: reads to EOF and answers the count of bytes read, as a
//     big-endian uint64, then closes;
//   - opDownload N: waits for goByte, sends N bytes, half-closes, and
//     reads (and drops) to EOF;
//   - opEcho: sends back every byte it reads, half-closes at EOF.
const (
	opUpload   = 'U'
	opDownload = 'D'
	opEcho     = 'E'

	headerLen = 9
	readyByte = 'k'
	goByte    = 'g'

	// headerTimeout bounds the wait for a header on a new connection.
	headerTimeout = 10 * time.Second
	// bulkBuf is the size of the reads and writes of bulk data, on both
	// the client and the backend.
	bulkBuf = 256 << 10
	// echoBuf is small: held sessions are idle echo sessions, thousands
	// of them.
	echoBuf = 4 << 10
)

// bulk is what the backend and the client send: its content does not
// matter to any system here (nothing compresses), only its size.
var bulk = func() []byte {
	b := make([]byte, bulkBuf)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}()

// header encodes the header of op with its argument.
func header(op byte, arg uint64) []byte {
	h := make([]byte, headerLen)
	h[0] = op
	binary.BigEndian.PutUint64(h[1:], arg)
	return h
}

// backendCommand is "chainbench backend -listen ADDR": the service at the
// far end of every system, run as a child process of the bench so that
// its CPU and descriptors are its own.
func backendCommand(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := listenRole(*listen)
	if err != nil {
		return err
	}
	return serve(ctx, ln, func(_ context.Context, c net.Conn) {
		if err := backendSession(c); err != nil && !isCleanEnd(err) {
			// The client judges its sessions; this is for the log only.
			fmt.Fprintf(os.Stderr, "backend: %s: %v\n", c.RemoteAddr(), err)
		}
	})
}

// backendSession serves one connection; the caller closes c.
func backendSession(c net.Conn) error {
	h := make([]byte, headerLen)
	_ = c.SetReadDeadline(time.Now().Add(headerTimeout))
	if _, err := io.ReadFull(c, h); err != nil {
		return fmt.Errorf("read header: %w", err)
	}
	_ = c.SetReadDeadline(time.Time{})
	if _, err := c.Write([]byte{readyByte}); err != nil {
		return err
	}
	arg := binary.BigEndian.Uint64(h[1:])
	switch h[0] {
	case opUpload:
		buf := make([]byte, bulkBuf)
		var n uint64
		for {
			k, err := c.Read(buf)
			n += uint64(k)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("upload after %d bytes: %w", n, err)
			}
		}
		_, err := c.Write(binary.BigEndian.AppendUint64(nil, n))
		return err
	case opDownload:
		g := make([]byte, 1)
		if _, err := io.ReadFull(c, g); err != nil {
			return fmt.Errorf("download: wait for go: %w", err)
		}
		for left := arg; left > 0; {
			k := min(left, uint64(len(bulk)))
			if _, err := c.Write(bulk[:k]); err != nil {
				return fmt.Errorf("download, %d bytes left: %w", left, err)
			}
			left -= k
		}
		if err := closeWrite(c); err != nil {
			return err
		}
		_, err := io.Copy(io.Discard, c)
		return err
	case opEcho:
		buf := make([]byte, echoBuf)
		for {
			k, err := c.Read(buf)
			if k > 0 {
				if _, werr := c.Write(buf[:k]); werr != nil {
					return werr
				}
			}
			if errors.Is(err, io.EOF) {
				return closeWrite(c)
			}
			if err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unknown op %q", h[0])
	}
}

// isCleanEnd reports an error that only says the connection went away,
// as it does when the bench closes its held sessions or stops.
func isCleanEnd(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
