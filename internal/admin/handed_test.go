package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/relaychain/relaychain/mux"
)

// TestTakeOverHanded: a datagram socket handed over with the listeners
// comes as a PacketConn that receives what is sent to it; at the commit,
// more open files than one message carries, and the part's state, reach
// the successor, each file still the same open file.
func TestTakeOverHanded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "eventsink.sock")
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	const n = 2*maxRights + 17
	// The pipes, made here: the commit hands their read ends over.
	var readers, writers []*os.File
	t.Cleanup(func() { closeFiles(writers) })
	for range n {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		readers, writers = append(readers, r), append(writers, w)
	}
	serveHandingOver(t, path, func() ([]mux.ListenerFile, error) {
		f, err := pc.(*net.UDPConn).File()
		if err != nil {
			return nil, err
		}
		return []mux.ListenerFile{{Addr: "events/udp", File: f}}, nil
	}, func() (*Handed, error) {
		return &Handed{State: json.RawMessage(`{"conns":417}`), Files: readers}, nil
	})
	tk, err := TakeOver(path, 5*time.Second)
	if err != nil {
		t.Fatalf("take over: %v", err)
	}
	defer tk.Close()
	got, ok := tk.PacketConns["events/udp"]
	if !ok || len(tk.Listeners) != 0 {
		t.Fatalf("handed over: listeners %v, datagram sockets %v", tk.Listeners, tk.PacketConns)
	}
	defer got.Close()
	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	_ = pc.Close() // the running node stops reading: the copy gets it
	buf := make([]byte, 16)
	_ = got.SetReadDeadline(time.Now().Add(5 * time.Second))
	if k, _, err := got.ReadFrom(buf); err != nil || string(buf[:k]) != "hello" {
		t.Fatalf("the handed datagram socket read %q, %v", buf[:k], err)
	}

	if err := tk.Ready(5 * time.Second); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	h := tk.Handed
	if h == nil || string(h.State) != `{"conns":417}` || len(h.Files) != n {
		t.Fatalf("handed at the commit: %+v", h)
	}
	defer h.Close()
	for _, i := range []int{0, maxRights, n - 1} {
		msg := fmt.Sprintf("file %d", i)
		if _, err := writers[i].WriteString(msg); err != nil {
			t.Fatal(err)
		}
		writers[i].Close()
		b, err := io.ReadAll(h.Files[i])
		if err != nil || string(b) != msg {
			t.Fatalf("handed file %d read %q, %v; want %q", i, b, err, msg)
		}
	}
}

// TestSendKeepsSocketNonBlocking: sending a copy of a socket the node
// serves leaves the socket non-blocking: a blocking one would leave the
// node's read or accept stuck in the kernel, and its close waiting for
// it, until the next datagram or connection.
func TestSendKeepsSocketNonBlocking(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	nonBlocking := func() bool {
		rc, err := pc.(*net.UDPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var flags int
		_ = rc.Control(func(fd uintptr) { flags, err = unix.FcntlInt(fd, unix.F_GETFL, 0) })
		if err != nil {
			t.Fatal(err)
		}
		return flags&unix.O_NONBLOCK != 0
	}
	if !nonBlocking() {
		t.Fatal("a fresh UDP socket is blocking")
	}
	f, err := pc.(*net.UDPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, b, err := unixPair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	if err := writeWithRights(a, []byte("{}\n"), []int{rawFd(f)}); err != nil {
		t.Fatal(err)
	}
	if !nonBlocking() {
		t.Fatal("sending a copy made the node's socket blocking")
	}
	var ans struct{}
	got, err := readWithRights(b, &ans, func() int { return 1 })
	if err != nil || len(got) != 1 {
		t.Fatalf("read %d files: %v", len(got), err)
	}
	closeFiles(got)
}

// unixPair returns two connected Unix stream sockets.
func unixPair() (*net.UnixConn, *net.UnixConn, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	var out [2]*net.UnixConn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "pair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			return nil, nil, err
		}
		out[i] = c.(*net.UnixConn)
	}
	return out[0], out[1], nil
}
