package e2e

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tcpSocket is one line of /proc/net/tcp or /proc/net/tcp6.
type tcpSocket struct {
	local, remote string
	state         int
}

func (s tcpSocket) String() string {
	names := map[int]string{1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
		6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING"}
	return fmt.Sprintf("%s -> %s %s", s.local, s.remote, names[s.state])
}

// tcpTable reads the system's TCP sockets by inode. /proc/net/tcp is the
// network namespace's table; the inodes tie its lines to processes.
func tcpTable() (map[uint64]tcpSocket, error) {
	out := map[uint64]tcpSocket{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			if os.IsNotExist(err) && f == "/proc/net/tcp6" {
				continue
			}
			return nil, err
		}
		sc := bufio.NewScanner(fh)
		sc.Scan() // the heading
		for sc.Scan() {
			// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 {
				continue
			}
			st, err1 := strconv.ParseInt(fs[3], 16, 32)
			inode, err2 := strconv.ParseUint(fs[9], 10, 64)
			if err1 != nil || err2 != nil || inode == 0 {
				continue
			}
			out[inode] = tcpSocket{local: procAddr(fs[1]), remote: procAddr(fs[2]), state: int(st)}
		}
		err = sc.Err()
		fh.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// procAddr decodes "0100007F:1F90" (little-endian words) to "127.0.0.1:8080".
func procAddr(s string) string {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return s
	}
	port, _ := strconv.ParseUint(p, 16, 16)
	b, err := hex.DecodeString(h)
	if err != nil || len(b)%4 != 0 {
		return s
	}
	for i := 0; i < len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	return net.JoinHostPort(net.IP(b).String(), strconv.FormatUint(port, 10))
}

// fdInfo is a process's open descriptors: how many, and the TCP sockets
// among them.
type fdInfo struct {
	count   int
	targets []string    // readlink of each descriptor, for messages
	sockets []tcpSocket // the process's TCP sockets
}

// fds reads /proc/PID/fd and matches its socket:[INODE] links against the
// TCP tables.
func fds(pid int) (fdInfo, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fdInfo{}, err
	}
	table, err := tcpTable()
	if err != nil {
		return fdInfo{}, err
	}
	info := fdInfo{count: len(ents)}
	for _, e := range ents {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		info.targets = append(info.targets, link)
		var inode uint64
		if _, err := fmt.Sscanf(link, "socket:[%d]", &inode); err == nil {
			if s, ok := table[inode]; ok {
				info.sockets = append(info.sockets, s)
			}
		}
	}
	sort.Strings(info.targets)
	return info, nil
}

// closeWait returns the process's sockets in CLOSE_WAIT.
func (i fdInfo) closeWait() []tcpSocket {
	var out []tcpSocket
	for _, s := range i.sockets {
		if s.state == tcpCloseWait {
			out = append(out, s)
		}
	}
	return out
}

func (i fdInfo) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d descriptors: %s\n", i.count, strings.Join(i.targets, " "))
	for _, s := range i.sockets {
		fmt.Fprintf(&b, "  tcp %s\n", s)
	}
	return b.String()
}

// fdBaseline records each daemon's descriptor count.
func fdBaseline(t testing.TB, procs ...*daemonProc) map[*daemonProc]fdInfo {
	t.Helper()
	base := map[*daemonProc]fdInfo{}
	for _, p := range procs {
		info, err := fds(p.pid())
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		if cw := info.closeWait(); len(cw) > 0 {
			t.Fatalf("%s holds CLOSE_WAIT sockets before any traffic: %v", p.name, cw)
		}
		base[p] = info
	}
	return base
}

// checkNoLeaks waits (at most d) until every daemon of base holds no
// CLOSE_WAIT socket and exactly its baseline number of descriptors.
func checkNoLeaks(t testing.TB, base map[*daemonProc]fdInfo, d time.Duration) {
	t.Helper()
	for p, b := range base {
		eventually(t, d, p.name+": descriptors back to the baseline, no CLOSE_WAIT", func() error {
			if p.exited() {
				return fmt.Errorf("%s exited: %v", p.name, p.waitErr)
			}
			now, err := fds(p.pid())
			if err != nil {
				return err
			}
			if cw := now.closeWait(); len(cw) > 0 {
				return fmt.Errorf("%d sockets in CLOSE_WAIT: %v\nnow: %s", len(cw), cw, now.describe())
			}
			if now.count != b.count {
				return fmt.Errorf("%d descriptors, baseline %d\nbaseline: %snow: %s", now.count, b.count, b.describe(), now.describe())
			}
			return nil
		})
	}
}

// checkNoCloseWait waits (at most d) until none of procs holds a
// CLOSE_WAIT socket.
func checkNoCloseWait(t testing.TB, d time.Duration, procs ...*daemonProc) {
	t.Helper()
	for _, p := range procs {
		eventually(t, d, p.name+": no CLOSE_WAIT", func() error {
			now, err := fds(p.pid())
			if err != nil {
				return err
			}
			if cw := now.closeWait(); len(cw) > 0 {
				return fmt.Errorf("%d sockets in CLOSE_WAIT: %v", len(cw), cw)
			}
			return nil
		})
	}
}

// listening reports whether pid has a TCP socket listening on addr.
func listening(pid int, addr string) bool {
	info, err := fds(pid)
	if err != nil {
		return false
	}
	for _, s := range info.sockets {
		if s.state == 10 && s.local == addr {
			return true
		}
	}
	return false
}
