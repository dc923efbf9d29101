package admin

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"time"
)

// An upgrade asked of the running node itself ("NAME upgrade", which
// systemd's units use): the client writes "upgrade\n"; the node starts
// its binary again (the new version put in its place) as its successor,
// which takes the node's place through "handover" (handover.go), and
// answers {"pid":N} once the successor took it, or {"error":"..."} when
// it failed and the node serves on. The successor runs beside the node,
// in the same service (cgroup, sandbox, notify socket).

// UpgradeTimeout bounds an upgrade request: the successor's start, its
// handover and its readiness.
var UpgradeTimeout = 2 * time.Minute

// upgradeAnswer is the JSON line of the answer to "upgrade".
type upgradeAnswer struct {
	Pid   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
}

// OnUpgrade makes the socket answer "upgrade" with what start returns:
// the pid of the successor that took the node's place. Set it before
// Serve.
func (s *Socket) OnUpgrade(start func() (int, error)) {
	s.upgrade = start
}

// serveUpgrade answers an upgrade request on c.
func (s *Socket) serveUpgrade(c net.Conn) {
	if s.upgrade == nil {
		_ = json.NewEncoder(c).Encode(upgradeAnswer{Error: "this node does not upgrade in place; restart it instead"})
		return
	}
	_ = c.SetDeadline(time.Now().Add(UpgradeTimeout))
	pid, err := s.upgrade()
	if err != nil {
		_ = json.NewEncoder(c).Encode(upgradeAnswer{Error: err.Error()})
		return
	}
	_ = json.NewEncoder(c).Encode(upgradeAnswer{Pid: pid})
}

// Upgrade asks the node whose admin socket is at path to upgrade in
// place, and returns the pid of its successor.
func Upgrade(path string, timeout time.Duration) (int, error) {
	c, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return 0, fmt.Errorf("%w: socket %s does not answer: %v", ErrNotRunning, path, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("upgrade\n")); err != nil {
		return 0, fmt.Errorf("upgrade request to %s: %w", path, err)
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return 0, fmt.Errorf("upgrade answer from %s: %w", path, err)
	}
	var ans upgradeAnswer
	if err := json.Unmarshal(line, &ans); err != nil {
		return 0, fmt.Errorf("upgrade answer from %s: %w", path, err)
	}
	if ans.Error != "" {
		return 0, fmt.Errorf("upgrade: %s", ans.Error)
	}
	return ans.Pid, nil
}
