// White-box (package mux): coalesceConn, the link's write coalescing, is
// unexported, and these tests look at the yamux frames it writes. The
// logger and tuning come from muxtest through SetTestKit (export_test.go).
package mux

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

// recordConn records each write that reaches the socket.
type recordConn struct {
	net.Conn
	writes [][]byte
}

func (r *recordConn) Write(p []byte) (int, error) {
	r.writes = append(r.writes, append([]byte(nil), p...))
	return len(p), nil
}

func yamuxHeader(typ byte, length uint32) []byte {
	h := make([]byte, yamuxHeaderLen)
	h[1] = typ
	binary.BigEndian.PutUint32(h[4:], 7)
	binary.BigEndian.PutUint32(h[8:], length)
	return h
}

func TestCoalesceConnJoinsDataFrames(t *testing.T) {
	rec := &recordConn{}
	c := &coalesceConn{Conn: rec}
	body := bytes.Repeat([]byte{'x'}, 100)
	// A data frame: header held, then sent with its body.
	if n, err := c.Write(yamuxHeader(yamuxTypeData, 100)); n != yamuxHeaderLen || err != nil {
		t.Fatalf("header write = %d, %v", n, err)
	}
	if len(rec.writes) != 0 {
		t.Fatalf("header of a data frame reached the socket alone")
	}
	if n, err := c.Write(body); n != len(body) || err != nil {
		t.Fatalf("body write = %d, %v", n, err)
	}
	// A window update (type 1) and a data header with no body pass at once.
	wu := yamuxHeader(1, 1<<20)
	if _, err := c.Write(wu); err != nil {
		t.Fatal(err)
	}
	empty := yamuxHeader(yamuxTypeData, 0)
	if _, err := c.Write(empty); err != nil {
		t.Fatal(err)
	}
	// On a TCP connection the held header and the body go out in one
	// writev; this recorder sees net.Buffers' fallback, two writes in a row.
	want := bytes.Join([][]byte{yamuxHeader(yamuxTypeData, 100), body, wu, empty}, nil)
	if got := bytes.Join(rec.writes, nil); !bytes.Equal(got, want) {
		t.Fatalf("socket got %x, want %x", got, want)
	}
}

// TestCoalesceConnUnderYamux runs a real yamux session over TCP with the
// wrapper on both ends and checks every byte, frames of all sizes.
func TestCoalesceConnUnderYamux(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	dc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ac := <-accepted
	if ac == nil {
		t.Fatal("accept failed")
	}
	cfg := fastTuning().yamuxConfig(yamuxLogger{testLog(t)})
	cli, err := yamux.Client(&coalesceConn{Conn: dc}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	srv, err := yamux.Server(&coalesceConn{Conn: ac}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	var want bytes.Buffer
	_, _ = io.CopyN(&want, rand.NewChaCha8([32]byte{9}), 3<<20+12345)
	got := make(chan []byte, 1)
	go func() {
		st, err := srv.AcceptStream()
		if err != nil {
			got <- nil
			return
		}
		b, _ := io.ReadAll(st)
		st.Close()
		got <- b
	}()
	st, err := cli.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	data := want.Bytes()
	for len(data) > 0 { // writes of many sizes: 1 byte to 200 KiB
		n := min(len(data), 1+len(data)%200000)
		if _, err := st.Write(data[:n]); err != nil {
			t.Fatal(err)
		}
		data = data[n:]
	}
	st.Close()
	select {
	case b := <-got:
		if !bytes.Equal(b, want.Bytes()) {
			t.Fatalf("got %d bytes, want %d (or they differ)", len(b), want.Len())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("transfer did not finish")
	}
}
