package admin

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
)

// What a node hands its successor besides the listening sockets
// (handover.go): at the commit, a daemon's own part (the eventsink's
// intake) may hand over open connections and a description of them. The
// answer to "ready" then carries them: {"ok":true,"state":...,"files":N},
// and N descriptors (SCM_RIGHTS) with the line and with single "+" bytes
// after it, at most maxRights to a message.

// Handed is what a node's own part hands its successor at the commit:
// open files (connections), and its own description of them.
type Handed struct {
	State json.RawMessage
	Files []*os.File
}

// Close closes the handed files.
func (h *Handed) Close() {
	if h != nil {
		closeFiles(h.Files)
	}
}

// maxRights is the most descriptors sent in one message.
const maxRights = 200

// Bounds of what a successor takes from the node it takes over from: the
// answer's line (the state of up to a few thousand connections, each
// with at most one event pending) and the descriptors.
const (
	maxAnswer = 512 << 20
	maxHanded = 1 << 16
)

// writeWithRights writes line (ending in a newline) with fds: the first
// maxRights with the line, the rest with single "+" bytes after it.
func writeWithRights(uc *net.UnixConn, line []byte, fds []int) error {
	first := fds[:min(len(fds), maxRights)]
	var oob []byte
	if len(first) > 0 {
		oob = syscall.UnixRights(first...)
	}
	if _, _, err := uc.WriteMsgUnix(line, oob, nil); err != nil {
		return err
	}
	for rest := fds[len(first):]; len(rest) > 0; {
		chunk := rest[:min(len(rest), maxRights)]
		rest = rest[len(chunk):]
		if _, _, err := uc.WriteMsgUnix([]byte{'+'}, syscall.UnixRights(chunk...), nil); err != nil {
			return err
		}
	}
	return nil
}

// readWithRights reads a JSON line into ans, and the descriptors sent
// with it: as many as count(ans) says, when that is more than came with
// the line. On error it closes what it received.
func readWithRights(uc *net.UnixConn, ans any, count func() int) ([]*os.File, error) {
	var data bytes.Buffer
	var files []*os.File
	buf, oob := make([]byte, 64<<10), make([]byte, syscall.CmsgSpace(4*256))
	read := func() error {
		n, oobn, flags, _, err := uc.ReadMsgUnix(buf, oob)
		if oobn > 0 {
			fs, perr := parseRights(oob[:oobn])
			files = append(files, fs...)
			if perr != nil {
				err = errors.Join(err, perr)
			}
		}
		data.Write(buf[:n])
		switch {
		case err != nil:
		case flags&syscall.MSG_CTRUNC != 0:
			err = errors.New("descriptors lost on the way (this process is out of open files?)")
		case n == 0 && oobn == 0:
			err = errors.New("empty read")
		case data.Len() > maxAnswer:
			err = fmt.Errorf("an answer over %d bytes", maxAnswer)
		}
		return err
	}
	for !bytes.Contains(data.Bytes(), []byte{'\n'}) {
		if err := read(); err != nil {
			closeFiles(files)
			return nil, err
		}
	}
	line, _, _ := bufio.NewReader(&data).ReadLine()
	if err := json.Unmarshal(line, ans); err != nil {
		closeFiles(files)
		return nil, err
	}
	want := count()
	if want > maxHanded {
		closeFiles(files)
		return nil, fmt.Errorf("%d descriptors announced, more than %d", want, maxHanded)
	}
	for len(files) < want {
		if err := read(); err != nil {
			closeFiles(files)
			return nil, fmt.Errorf("%d of %d descriptors received: %w", len(files), want, err)
		}
	}
	return files, nil
}

// rawFd returns f's descriptor without making it blocking, as Fd would:
// the open file is shared with the socket the node still serves, whose
// reads and accepts must not block. f must stay open while the number is
// used.
func rawFd(f *os.File) int {
	fd := -1
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(u uintptr) { fd = int(u) })
	}
	return fd
}

// isDatagram reports whether f is a datagram socket (UDP).
func isDatagram(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	t := 0
	// Through Control, not Fd, which would make the shared socket
	// blocking.
	cerr := rc.Control(func(fd uintptr) {
		t, err = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TYPE)
	})
	return cerr == nil && err == nil && t == syscall.SOCK_DGRAM
}

// sendHanded answers "ready" after the commit: ok, with what the node's
// part handed over (h may be nil), whose files it closes.
func sendHanded(uc *net.UnixConn, h *Handed) error {
	ans := handoverAnswer{OK: true}
	var fds []int
	if h != nil {
		defer h.Close()
		ans.State, ans.Files = h.State, len(h.Files)
		for _, f := range h.Files {
			fds = append(fds, rawFd(f))
		}
	}
	line, err := json.Marshal(ans)
	if err != nil {
		return err
	}
	return writeWithRights(uc, append(line, '\n'), fds)
}
