// White-box (package mux): coalesceConn, the link's write coalescing, is
// unexported, and these tests look at the yamux frames it writes. The
// logger and tuning come from muxtest through SetTestKit (export_test.go).
package mux

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
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
	_, _ = io.CopyN(&want, mrand.NewChaCha8([32]byte{9}), 3<<20+12345)
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

// countConn counts the writes that reach the socket. Once stall is set, a
// write blocks until the connection is closed, as a write to a peer that
// has stopped reading does.
type countConn struct {
	net.Conn
	writes  atomic.Int64
	stall   atomic.Bool
	stalled chan struct{} // closed when a write blocks
	closed  chan struct{}
	once    sync.Once
}

func newCountConn(c net.Conn) *countConn {
	return &countConn{Conn: c, stalled: make(chan struct{}), closed: make(chan struct{})}
}

func (c *countConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	if c.stall.Load() {
		select {
		case <-c.stalled:
		default:
			close(c.stalled)
		}
		<-c.closed
		return 0, net.ErrClosed
	}
	return c.Conn.Write(p)
}

func (c *countConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// tlsLinkPair returns the two ends of a TLS connection on loopback, the
// handshake done: the client's as a link's writer sees it (coalesceConn
// over TLS over recordBatchConn) with the socket's write counter under
// it, and the server's. The certificate is a throwaway: these tests are
// about the writes, not the trust.
func tlsLinkPair(t *testing.T) (*coalesceConn, *countConn, *tls.Conn) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := tlsBase()
	cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}
	cfg.InsecureSkipVerify = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan *tls.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		sc := tls.Server(c, cfg)
		if sc.Handshake() != nil {
			_ = c.Close()
			sc = nil
		}
		accepted <- sc
	}()
	dc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cnt := newCountConn(dc)
	tc := tls.Client(newRecordBatchConn(cnt), cfg)
	t.Cleanup(func() { _ = tc.Close() })
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	sc := <-accepted
	if sc == nil {
		t.Fatal("server handshake failed")
	}
	t.Cleanup(func() { _ = sc.Close() })
	cc := newCoalesceConn(tc)
	if cc.batch == nil {
		t.Fatal("no recordBatchConn under the TLS connection")
	}
	return cc, cnt, sc
}

// TestRecordBatchConnOneWritePerBatch: over TLS, a data frame's header and
// body leave in one socket write per tlsBatchLen of plaintext (a frame
// of tlsBatchLen in one), other frames in one each, and every byte arrives.
func TestRecordBatchConnOneWritePerBatch(t *testing.T) {
	cc, cnt, sc := tlsLinkPair(t)
	var want bytes.Buffer
	frame := func(typ byte, body []byte, wantWrites int64) {
		t.Helper()
		w0 := cnt.writes.Load()
		hdr := yamuxHeader(typ, uint32(len(body)))
		if typ != yamuxTypeData {
			hdr = yamuxHeader(typ, 1<<20)
		}
		if _, err := cc.Write(hdr); err != nil {
			t.Fatal(err)
		}
		want.Write(hdr)
		if len(body) > 0 {
			if n, err := cc.Write(body); n != len(body) || err != nil {
				t.Fatalf("body write = %d, %v", n, err)
			}
			want.Write(body)
		}
		if got := cnt.writes.Load() - w0; got != wantWrites {
			t.Errorf("frame of %d bytes: %d socket writes, want %d", len(body), got, wantWrites)
		}
	}
	body := make([]byte, 3*tlsBatchLen+3392)
	_, _ = io.ReadFull(mrand.NewChaCha8([32]byte{3}), body)
	frame(yamuxTypeData, body[:100], 1)
	frame(yamuxTypeData, body[:tlsBatchLen], 1)
	frame(1, nil, 1) // a window update
	// Three batches and 3,392 bytes: a batch less 12 bytes with the
	// header, a batch, then a batch and the tail of 3,404 together.
	frame(yamuxTypeData, body, 3)

	got := make([]byte, want.Len())
	_ = sc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(sc, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatal("the bytes that arrived differ from those written")
	}
}

// TestRecordBatchConnCloseDoesNotWait: a Close of the TLS connection while
// the link's writer is stuck writing a batch to a peer that has stopped
// reading closes the socket at once (its alert joins the batch) and the
// writer gets an error, as when the writer is stuck in crypto/tls's own
// write.
func TestRecordBatchConnCloseDoesNotWait(t *testing.T) {
	cc, cnt, _ := tlsLinkPair(t)
	tc := cc.Conn.(*tls.Conn)
	cnt.stall.Store(true)
	werr := make(chan error, 1)
	go func() {
		if _, err := cc.Write(yamuxHeader(yamuxTypeData, 64<<10)); err != nil {
			werr <- err
			return
		}
		_, err := cc.Write(make([]byte, 64<<10))
		werr <- err
	}()
	select {
	case <-cnt.stalled:
	case <-time.After(10 * time.Second):
		t.Fatal("the frame was not written")
	}
	closed := make(chan struct{})
	go func() {
		_ = tc.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(3 * time.Second): // an alert waiting behind the write would take 5 s
		t.Fatal("Close waited behind the stuck write")
	}
	select {
	case err := <-werr:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("stuck write returned %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stuck write did not return")
	}
}
