package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"
)

// dialSession connects to addr, sends the header of op with arg, then
// payload, and waits for the backend's ready byte: the session then runs
// end to end through the system. The whole exchange has the deadline
// now+timeout, which stays set on the connection returned.
func dialSession(ctx context.Context, addr string, op byte, arg uint64, payload []byte, timeout time.Duration) (net.Conn, error) {
	deadline := time.Now().Add(timeout)
	c, err := dialEntry(ctx, addr, deadline)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write(append(header(op, arg), payload...)); err != nil {
		c.Close()
		return nil, fmt.Errorf("send header: %w", err)
	}
	k := make([]byte, 1)
	if _, err := io.ReadFull(c, k); err != nil {
		c.Close()
		return nil, fmt.Errorf("no answer from the backend: %w", err)
	}
	if k[0] != readyByte {
		c.Close()
		return nil, fmt.Errorf("the backend answered %q, not %q", k[0], readyByte)
	}
	return c, nil
}

// echoOnce opens an echo session, sends payload, checks that it comes
// back and closes: one session open as a client sees it.
func echoOnce(ctx context.Context, addr string, payload []byte, timeout time.Duration) error {
	c, err := dialSession(ctx, addr, opEcho, 0, payload, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	return readEcho(c, payload)
}

// readEcho reads len(want) bytes from c and checks they are want.
func readEcho(c net.Conn, want []byte) error {
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("echo: %w", err)
	}
	if !bytes.Equal(got, want) {
		return errors.New("echo: the bytes that came back differ from those sent")
	}
	return nil
}

// sendAll sends n bytes on an upload session, half-closes, and checks the
// count the backend acknowledges.
func sendAll(c net.Conn, n int64) error {
	for left := n; left > 0; {
		k := min(left, int64(len(bulk)))
		if _, err := c.Write(bulk[:k]); err != nil {
			return fmt.Errorf("upload, %d bytes left: %w", left, err)
		}
		left -= k
	}
	if err := closeWrite(c); err != nil {
		return err
	}
	ack := make([]byte, 8)
	if _, err := io.ReadFull(c, ack); err != nil {
		return fmt.Errorf("upload: no count from the backend: %w", err)
	}
	if got := binary.BigEndian.Uint64(ack); got != uint64(n) {
		return fmt.Errorf("upload: the backend received %d bytes of %d", got, n)
	}
	return nil
}

// receiveAll starts a download session and reads to EOF, checking that n
// bytes came.
func receiveAll(c net.Conn, n int64) error {
	if _, err := c.Write([]byte{goByte}); err != nil {
		return err
	}
	buf := make([]byte, bulkBuf)
	var got int64
	for {
		k, err := c.Read(buf)
		got += int64(k)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("download after %d of %d bytes: %w", got, n, err)
		}
	}
	if got != n {
		return fmt.Errorf("download: %d bytes of %d", got, n)
	}
	return nil
}

// dialEntry connects to a system's entry with deadline set: addr is
// HOST:PORT, or socks5://ENTRY/HOST:PORT for a SOCKS5 entry, where the
// client asks for HOST:PORT (an IPv4 address) with a CONNECT first.
func dialEntry(ctx context.Context, addr string, deadline time.Time) (net.Conn, error) {
	target := ""
	if rest, ok := strings.CutPrefix(addr, "socks5://"); ok {
		addr, target, _ = strings.Cut(rest, "/")
	}
	d := net.Dialer{Deadline: deadline}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(deadline)
	if target == "" {
		return c, nil
	}
	ap, err := netip.ParseAddrPort(target)
	if err != nil || !ap.Addr().Is4() {
		c.Close()
		return nil, fmt.Errorf("socks target %q: want IPv4:PORT", target)
	}
	// Greeting, request and the two answers in one round trip each way:
	// no authentication, CONNECT to target.
	req := []byte{5, 1, 0, 5, 1, 0, 1}
	req = append(req, ap.Addr().AsSlice()...)
	req = binary.BigEndian.AppendUint16(req, ap.Port())
	if _, err := c.Write(req); err != nil {
		c.Close()
		return nil, fmt.Errorf("socks request: %w", err)
	}
	ans := make([]byte, 2+10)
	if _, err := io.ReadFull(c, ans); err != nil {
		c.Close()
		return nil, fmt.Errorf("socks answer: %w", err)
	}
	if ans[1] != 0 || ans[3] != 0 {
		c.Close()
		return nil, fmt.Errorf("socks answer %x", ans)
	}
	return c, nil
}
