package admin

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/relaychain/relaychain/mux"
)

// A rolling upgrade: the new process of an instance (started with
// TakeOverEnv set) asks the running one for its listening sockets on the
// admin socket. It writes "handover\n"; the running node answers with one
// JSON line, {"addrs":["127.0.0.1:7001",...]}, carrying copies of the
// sockets in the same message (SCM_RIGHTS), one per address in that
// order, or with {"error":"..."}. Before it answers it closes its admin
// socket, so that the new process can bind the same path; it goes on
// accepting on its listening sockets and keeps its links meanwhile.
//
// Once the successor has bound everything it needs and can serve, it
// writes "ready\n" on the same connection. Only then does the running
// node stop accepting and hand its links over (the commit), and answer
// {"ok":true}; the successor accepts from then on. If the successor
// closes the connection first (it failed: a port of a new entry in use, a
// crash), or stays silent for ReadyTimeout, the running node binds its
// admin socket again and serves on as it was. After the commit the
// connection stays open until the running node exits: the successor
// refuses a second upgrade until then.
//
// The socket is mode 0600 in the instance directory: only the instance's
// own user can ask.

// TakeOverEnv, set to 1 in a daemon's environment, makes it take the
// listening sockets over from the instance running with the same
// configuration instead of binding them (scripts/NAME.sh upgrade).
const TakeOverEnv = "RELAYCHAIN_TAKE_OVER"

// PidFileEnv names a file that a process taking over writes its pid to,
// once it has taken the place (scripts/NAME.sh upgrade waits for it).
const PidFileEnv = "RELAYCHAIN_PID_FILE"

// ReadyTimeout bounds how long a node that handed copies of its sockets
// to a successor waits for it to say it is ready before it serves on.
var ReadyTimeout = time.Minute

// handoverAnswer is the JSON line of the answers to "handover" and
// "ready".
type handoverAnswer struct {
	Addrs []string `json:"addrs,omitempty"`
	OK    bool     `json:"ok,omitempty"`
	Error string   `json:"error,omitempty"`
	// At the commit, what the node's own part hands over (handed.go).
	State json.RawMessage `json:"state,omitempty"`
	Files int             `json:"files,omitempty"`
}

// OnHandover makes the socket answer "handover" with the listening
// sockets that give returns (copies: the node goes on accepting on its
// own; the socket closes the files once sent), and commit the handover
// once the successor is ready (the node stops accepting and hands its
// links over, and its own part what it hands over: the socket sends it
// and closes the files). Set it before Serve.
func (s *Socket) OnHandover(give func() ([]mux.ListenerFile, error), commit func() (*Handed, error)) {
	s.handover = give
	s.commit = commit
}

// serveHandover answers a handover request on c. It reports whether it
// keeps c (open until Close, after a commit).
func (s *Socket) serveHandover(c net.Conn) bool {
	uc, ok := c.(*net.UnixConn)
	if !ok || s.handover == nil {
		_ = json.NewEncoder(c).Encode(handoverAnswer{Error: "this node does not hand over"})
		return false
	}
	s.mu.Lock()
	busy, closing := s.handing != nil, s.closing
	if !busy && !closing {
		s.handing = c
	}
	s.mu.Unlock()
	switch {
	case busy:
		_ = json.NewEncoder(c).Encode(handoverAnswer{Error: "an upgrade is in progress: this node is handing over to another successor"})
		return false
	case closing:
		_ = json.NewEncoder(c).Encode(handoverAnswer{Error: "this node is shutting down"})
		return false
	}
	files, err := s.handover()
	if err != nil {
		s.release(c)
		_ = json.NewEncoder(c).Encode(handoverAnswer{Error: err.Error()})
		return false
	}
	// The successor binds the admin socket's path next: it goes now (the
	// listener unlinks it), this connection stays.
	s.mu.Lock()
	_ = s.ln.Close()
	s.mu.Unlock()
	ans := handoverAnswer{Addrs: []string{}}
	fds := make([]int, 0, len(files))
	for _, f := range files {
		ans.Addrs = append(ans.Addrs, f.Addr)
		fds = append(fds, rawFd(f.File))
	}
	line, _ := json.Marshal(ans)
	line = append(line, '\n')
	err = writeWithRights(uc, line, fds)
	closeListenerFiles(files)
	if err != nil {
		s.resume(c, fmt.Sprintf("the listening sockets were not sent: %v", err))
		return false
	}
	s.log.Infof("handed copies of %d listening sockets to a successor; serving on until it says it is ready (up to %s)", len(files), ReadyTimeout)
	_ = c.SetDeadline(time.Now().Add(ReadyTimeout))
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || strings.TrimSpace(got) != "ready" {
		why := "it went away before it was ready"
		if errors.Is(err, os.ErrDeadlineExceeded) {
			why = fmt.Sprintf("it did not say it was ready within %s", ReadyTimeout)
		} else if err == nil {
			why = fmt.Sprintf("it said %q", strings.TrimSpace(got))
		}
		s.resume(c, why)
		return false
	}
	handed, err := s.commit()
	if err != nil {
		_ = json.NewEncoder(c).Encode(handoverAnswer{Error: err.Error()})
		s.resume(c, fmt.Sprintf("the handover failed: %v", err))
		return false
	}
	_ = c.SetDeadline(time.Now().Add(requestTimeout))
	if err := sendHanded(uc, handed); err != nil {
		s.log.Errorf("the successor did not get what this node handed over: %v", err)
	}
	_ = c.SetDeadline(time.Time{})
	s.log.Info("the successor is ready: it accepts from now on; this node hands its links over")
	// Open until this node exits: the successor refuses another
	// upgrade meanwhile.
	return true
}

// release forgets the successor's connection c.
func (s *Socket) release(c net.Conn) {
	s.mu.Lock()
	if s.handing == c {
		s.handing = nil
	}
	s.mu.Unlock()
}

// resume binds the admin socket again after a successor failed (why), and
// serves on as before.
func (s *Socket) resume(c net.Conn, why string) {
	s.release(c)
	s.log.Errorf("handover abandoned: %s; this node keeps its listening sockets and links and serves on", why)
	ln, err := ListenSocket(s.path, s.status, s.log)
	if err != nil {
		s.log.WithError(err).Error("handover abandoned: the admin socket is not back; restart the node to get it")
		return
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		_ = ln.ln.Close()
		return
	}
	s.ln = ln.ln
	s.mu.Unlock()
	select {
	case s.resumed <- struct{}{}:
	default:
	}
}

// Takeover is the successor's side of a rolling upgrade: the listening
// sockets it took over, by address, and its connection to the node it
// takes the place of.
type Takeover struct {
	Listeners map[string]net.Listener
	// PacketConns are the datagram sockets (an eventsink's UDP intake),
	// by the name they were handed over under.
	PacketConns map[string]net.PacketConn
	// Handed is what the node's own part handed over at the commit
	// (after Ready; nil when nothing): the receiver owns its files.
	Handed *Handed

	uc   *net.UnixConn
	gone chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

// TakeOver asks the node whose admin socket is at path for its listening
// sockets, and returns them by address. The node goes on accepting on
// them until Ready; Close before Ready (or the end of this process) leaves
// it serving as it was.
func TakeOver(path string, timeout time.Duration) (*Takeover, error) {
	c, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return nil, fmt.Errorf("%w: socket %s does not answer: %v", ErrNotRunning, path, err)
	}
	uc := c.(*net.UnixConn)
	t := &Takeover{uc: uc, gone: make(chan struct{})}
	lns, err := t.request(path, timeout)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	t.Listeners = lns
	return t, nil
}

// request sends "handover" and takes the answer's sockets.
func (t *Takeover) request(path string, timeout time.Duration) (map[string]net.Listener, error) {
	uc := t.uc
	_ = uc.SetDeadline(time.Now().Add(timeout))
	if _, err := uc.Write([]byte("handover\n")); err != nil {
		return nil, fmt.Errorf("handover request to %s: %w", path, err)
	}
	var ans handoverAnswer
	files, err := readWithRights(uc, &ans, func() int { return len(ans.Addrs) })
	if err != nil {
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
	t.PacketConns = map[string]net.PacketConn{}
	for i, f := range files {
		var err error
		if isDatagram(f) {
			var pc net.PacketConn
			if pc, err = net.FilePacketConn(f); err == nil {
				t.PacketConns[ans.Addrs[i]] = pc
			}
		} else {
			var ln net.Listener
			if ln, err = net.FileListener(f); err == nil {
				out[ans.Addrs[i]] = ln
			}
		}
		_ = f.Close()
		if err != nil {
			for _, l := range out {
				_ = l.Close()
			}
			for _, pc := range t.PacketConns {
				_ = pc.Close()
			}
			closeFiles(files[i+1:])
			return nil, fmt.Errorf("handed-over socket for %s: %w", ans.Addrs[i], err)
		}
	}
	return out, nil
}

// Ready tells the node taken over from that this process can serve, and
// waits (up to timeout) until it has stopped accepting and handed its
// links over. After an error the node serves on, and this process must
// not accept on the listeners.
func (t *Takeover) Ready(timeout time.Duration) error {
	_ = t.uc.SetDeadline(time.Now().Add(timeout))
	if _, err := t.uc.Write([]byte("ready\n")); err != nil {
		return fmt.Errorf("tell the running instance this one is ready: %w", err)
	}
	var ans handoverAnswer
	files, err := readWithRights(t.uc, &ans, func() int { return ans.Files })
	if err != nil {
		return fmt.Errorf("the running instance did not confirm the handover: %w", err)
	}
	if !ans.OK {
		closeFiles(files)
		return fmt.Errorf("the running instance did not hand over: %s", ans.Error)
	}
	if len(ans.State) > 0 || len(files) > 0 {
		t.Handed = &Handed{State: ans.State, Files: files}
	}
	_ = t.uc.SetDeadline(time.Time{})
	t.wg.Add(1)
	go t.watchPredecessor()
	return nil
}

// watchPredecessor closes Gone when the node taken over from has exited
// (its end of the connection closes).
func (t *Takeover) watchPredecessor() {
	defer t.wg.Done()
	defer close(t.gone)
	_, _ = io.Copy(io.Discard, t.uc)
}

// Gone is closed once the node taken over from has exited, after Ready.
func (t *Takeover) Gone() <-chan struct{} { return t.gone }

// Close closes the connection to the node taken over from: before Ready,
// that node serves on as it was. Idempotent.
func (t *Takeover) Close() {
	t.once.Do(func() {
		_ = t.uc.Close()
		t.wg.Wait()
	})
}

func closeListenerFiles(fs []mux.ListenerFile) {
	for _, f := range fs {
		_ = f.File.Close()
	}
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
