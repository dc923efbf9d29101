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
	"time"

	"github.com/relaychain/relaychain/mux"
)

// A rolling upgrade: the new process of an instance (started with
// TakeOverEnv set) asks the running one for its listening sockets on the
// admin socket. It writes "handover\n"; the running node answers with one
// JSON line, {"addrs":["127.0.0.1:7001",...]}, carrying the sockets
// themselves in the same message (SCM_RIGHTS), one per address in that
// order, or with {"error":"..."}. Before it answers it closes its admin
// socket, so that the new process can bind the same path. The socket is
// mode 0600 in the instance directory: only the instance's own user can
// ask.

// TakeOverEnv, set to 1 in a daemon's environment, makes it take the
// listening sockets over from the instance running with the same
// configuration instead of binding them (scripts/NAME.sh upgrade).
const TakeOverEnv = "RELAYCHAIN_TAKE_OVER"

// handoverAnswer is the JSON line of the answer to "handover".
type handoverAnswer struct {
	Addrs []string `json:"addrs,omitempty"`
	Error string   `json:"error,omitempty"`
}

// OnHandover makes the socket answer "handover" with the listening
// sockets that give returns (the node stops accepting on them; the socket
// closes the files once sent). Set it before Serve.
func (s *Socket) OnHandover(give func() ([]mux.ListenerFile, error)) {
	s.handover = give
}

// serveHandover answers a handover request on c.
func (s *Socket) serveHandover(c net.Conn) {
	uc, ok := c.(*net.UnixConn)
	if !ok || s.handover == nil {
		_ = json.NewEncoder(c).Encode(handoverAnswer{Error: "this node does not hand over"})
		return
	}
	files, err := s.handover()
	if err != nil {
		_ = json.NewEncoder(c).Encode(handoverAnswer{Error: err.Error()})
		return
	}
	defer func() {
		for _, f := range files {
			_ = f.File.Close()
		}
	}()
	// The successor binds the admin socket's path next: it goes now (the
	// listener unlinks it), this connection stays.
	_ = s.ln.Close()
	ans := handoverAnswer{Addrs: []string{}}
	fds := make([]int, 0, len(files))
	for _, f := range files {
		ans.Addrs = append(ans.Addrs, f.Addr)
		fds = append(fds, int(f.File.Fd()))
	}
	line, _ := json.Marshal(ans)
	line = append(line, '\n')
	if _, _, err := uc.WriteMsgUnix(line, syscall.UnixRights(fds...), nil); err != nil {
		s.log.WithError(err).Error("handover: the listening sockets were not sent")
		return
	}
	s.log.Infof("handed %d listening sockets over to the successor", len(files))
}

// TakeOver asks the node whose admin socket is at path for its listening
// sockets, and returns them by address. The node stops accepting on them
// and starts to hand its place over.
func TakeOver(path string, timeout time.Duration) (map[string]net.Listener, error) {
	c, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return nil, fmt.Errorf("%w: socket %s does not answer: %v", ErrNotRunning, path, err)
	}
	defer c.Close()
	uc := c.(*net.UnixConn)
	_ = uc.SetDeadline(time.Now().Add(timeout))
	if _, err := uc.Write([]byte("handover\n")); err != nil {
		return nil, fmt.Errorf("handover request to %s: %w", path, err)
	}
	var data bytes.Buffer
	var files []*os.File
	buf, oob := make([]byte, 64<<10), make([]byte, syscall.CmsgSpace(4*256))
	for !bytes.Contains(data.Bytes(), []byte{'\n'}) {
		n, oobn, _, _, err := uc.ReadMsgUnix(buf, oob)
		if oobn > 0 {
			fs, perr := parseRights(oob[:oobn])
			files = append(files, fs...)
			if perr != nil {
				err = errors.Join(err, perr)
			}
		}
		data.Write(buf[:n])
		if err != nil {
			closeFiles(files)
			return nil, fmt.Errorf("handover answer from %s: %w", path, err)
		}
	}
	var ans handoverAnswer
	line, _, _ := bufio.NewReader(&data).ReadLine()
	if err := json.Unmarshal(line, &ans); err != nil {
		closeFiles(files)
		return nil, fmt.Errorf("handover answer from %s: %w", path, err)
	}
	if ans.Error != "" {
		closeFiles(files)
		return nil, fmt.Errorf("handover refused by %s: %s", path, ans.Error)
	}
	if len(files) != len(ans.Addrs) {
		closeFiles(files)
		return nil, fmt.Errorf("handover answer from %s: %d sockets for %d addresses", path, len(files), len(ans.Addrs))
	}
	out := make(map[string]net.Listener, len(files))
	for i, f := range files {
		ln, err := net.FileListener(f)
		_ = f.Close()
		if err != nil {
			for _, l := range out {
				_ = l.Close()
			}
			closeFiles(files[i+1:])
			return nil, fmt.Errorf("handed-over socket for %s: %w", ans.Addrs[i], err)
		}
		out[ans.Addrs[i]] = ln
	}
	return out, nil
}

func parseRights(oob []byte) ([]*os.File, error) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var out []*os.File
	for _, m := range msgs {
		fds, err := syscall.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			out = append(out, os.NewFile(uintptr(fd), "handed-over listener"))
		}
	}
	return out, nil
}

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		_ = f.Close()
	}
}
