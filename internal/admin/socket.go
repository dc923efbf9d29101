// Package admin serves a running node's status to its operator: a local
// Unix socket that answers a status request with the node's snapshot as
// JSON (read by "NAME status"), and the formatting of that snapshot.
//
// Typical usage, in a daemon:
//
//	s, err := admin.ListenSocket(path, node.Status, log)
//	...
//	go s.Serve()
//	defer s.Close() // removes the socket
//
// and in "NAME status":
//
//	st, err := admin.Query(path, 5*time.Second)
//	admin.WriteSummary(os.Stdout, st)
package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/mux"
)

// ErrNotRunning is returned by Query when no socket is at the path.
var ErrNotRunning = errors.New("not running")

// requestTimeout bounds one request on the socket, both ends.
const requestTimeout = 5 * time.Second

// Socket is the admin socket of a running node. The protocol is one line
// per connection: the client writes "status\n", the server answers with
// the snapshot as one JSON object and closes; or "tree\n", answered with
// the whole tree's status (mux.TreeNode) or {"error": "..."}.
type Socket struct {
	ln     net.Listener
	path   string
	status func() mux.NodeStatus
	log    *logrus.Entry

	wg        sync.WaitGroup
	closeOnce sync.Once

	handover func() ([]mux.ListenerFile, error) // OnHandover, handover.go
	// The tree, at the root (tree.go).
	tree func(context.Context) (mux.TreeNode, error)

	// A rolling upgrade (handover.go): the listener goes while a
	// successor gets ready, and comes back (resumed) when it fails.
	mu       sync.Mutex
	closing  bool
	handing  net.Conn // the successor's connection, open until Close
	commit   func() (*Handed, error)
	upgrade  func() (int, error) // OnUpgrade, upgrade.go
	resumed  chan struct{}
	closedCh chan struct{}
}

// ListenSocket binds the Unix socket at path, mode 0600. A socket file
// left there by a daemon that died is replaced; one that answers is not
// (another instance is running).
func ListenSocket(path string, status func() mux.NodeStatus, log *logrus.Entry) (*Socket, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("admin socket %s: a file that is not a socket is in the way", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			_ = c.Close()
			return nil, fmt.Errorf("admin socket %s: another instance is running", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("admin socket: remove stale %s: %w", path, err)
		}
	}
	ln, err := listenUnix(path)
	if err != nil {
		return nil, err
	}
	return &Socket{ln: ln, path: path, status: status, log: log,
		resumed: make(chan struct{}, 1), closedCh: make(chan struct{})}, nil
}

// listenUnix binds the Unix socket at path, mode 0600.
func listenUnix(path string) (net.Listener, error) {
	// Set to 0600 before it accepts; the instance directory should not be
	// open to others either.
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o600); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	return ln, nil
}

// Path returns the socket's path.
func (s *Socket) Path() string { return s.path }

// Serve answers requests until Close. Each connection is served in its
// own goroutine, which Close waits for.
func (s *Socket) Serve() error {
	for {
		s.mu.Lock()
		ln := s.ln
		s.mu.Unlock()
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				// Closed, or gone to a successor: back if it fails.
				select {
				case <-s.resumed:
					continue
				case <-s.closedCh:
					return nil
				}
			}
			s.log.WithError(err).Error("admin socket: accept failed")
			time.Sleep(50 * time.Millisecond)
			continue
		}
		// Counted under the lock that Close takes to mark the socket
		// closing before it waits: no request joins once Close waits.
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			_ = c.Close()
			continue
		}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
		}()
	}
}

// serveConn answers one request. It closes c.
func (s *Socket) serveConn(c net.Conn) {
	keep := false
	defer func() {
		if !keep {
			_ = c.Close()
		}
	}()
	_ = c.SetDeadline(time.Now().Add(requestTimeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return
	}
	switch strings.TrimSpace(line) {
	case "status":
		_ = json.NewEncoder(c).Encode(s.status())
	case "handover":
		keep = s.serveHandover(c)
	case "upgrade":
		s.serveUpgrade(c)
	case "tree":
		s.serveTree(c)
	default:
		_, _ = fmt.Fprintf(c, "{\"error\":%q}\n", "unknown request "+strings.TrimSpace(line))
	}
}

// Close stops serving, removes the socket and waits for the requests in
// progress. Idempotent.
func (s *Socket) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		ln, handing := s.ln, s.handing
		s.mu.Unlock()
		close(s.closedCh)
		err = ln.Close()
		if errors.Is(err, net.ErrClosed) {
			err = nil // handed over
		}
		if handing != nil {
			_ = handing.Close()
		}
		s.wg.Wait()
	})
	return err
}

// Query asks the node whose admin socket is at path for its status.
func Query(path string, timeout time.Duration) (mux.NodeStatus, error) {
	var st mux.NodeStatus
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return st, fmt.Errorf("%w: no socket at %s", ErrNotRunning, path)
	}
	c, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return st, fmt.Errorf("%w: socket %s does not answer: %v", ErrNotRunning, path, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("status\n")); err != nil {
		return st, fmt.Errorf("status request to %s: %w", path, err)
	}
	if err := json.NewDecoder(c).Decode(&st); err != nil {
		return st, fmt.Errorf("status answer from %s: %w", path, err)
	}
	return st, nil
}
