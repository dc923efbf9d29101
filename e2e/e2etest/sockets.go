package e2etest

import (
	"bufio"
	"encoding/hex"
	"errors"
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

// Linux TCP states, as in tcp_info.tcpi_state and /proc/net/tcp.
const (
	StateEstablished = 1
	StateClose       = 7
	StateCloseWait   = 8
	StateListen      = 10
)

// Socket is one line of /proc/net/tcp or /proc/net/tcp6.
type Socket struct {
	Local, Remote string
	State         int
	Inode         uint64 // the socket's identity: the same in every process holding it
}

func (s Socket) String() string {
	names := map[int]string{1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
		6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING"}
	return fmt.Sprintf("%s -> %s %s", s.Local, s.Remote, names[s.State])
}

// tcpTable reads the system's TCP sockets by inode. /proc/net/tcp is the
// network namespace's table; the inodes tie its lines to processes.
func tcpTable() (map[uint64]Socket, error) {
	out := map[uint64]Socket{}
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
			out[inode] = Socket{Local: procAddr(fs[1]), Remote: procAddr(fs[2]), State: int(st), Inode: inode}
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

// FDs are a process's open descriptors: how many, and the TCP sockets
// among them.
type FDs struct {
	Count   int
	Targets []string // readlink of each descriptor, for messages
	Sockets []Socket // the process's TCP sockets
}

// OpenFDs reads /proc/PID/fd and matches its socket:[INODE] links against
// the TCP tables.
func OpenFDs(pid int) (FDs, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return FDs{}, err
	}
	table, err := tcpTable()
	if err != nil {
		return FDs{}, err
	}
	info := FDs{Count: len(ents)}
	for _, e := range ents {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		info.Targets = append(info.Targets, link)
		var inode uint64
		if _, err := fmt.Sscanf(link, "socket:[%d]", &inode); err == nil {
			if s, ok := table[inode]; ok {
				info.Sockets = append(info.Sockets, s)
			}
		}
	}
	sort.Strings(info.Targets)
	return info, nil
}

// CloseWait returns the sockets in CLOSE_WAIT.
func (i FDs) CloseWait() []Socket {
	var out []Socket
	for _, s := range i.Sockets {
		if s.State == StateCloseWait {
			out = append(out, s)
		}
	}
	return out
}

// String lists the descriptors and the TCP sockets, for messages.
func (i FDs) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d descriptors: %s\n", i.Count, strings.Join(i.Targets, " "))
	for _, s := range i.Sockets {
		fmt.Fprintf(&b, "  tcp %s\n", s)
	}
	return b.String()
}

// FDBaseline records each process's descriptors, and fails the test if one
// already holds a CLOSE_WAIT socket.
func FDBaseline(t testing.TB, procs ...*Process) map[*Process]FDs {
	t.Helper()
	base := map[*Process]FDs{}
	for _, p := range procs {
		info, err := OpenFDs(p.Pid())
		if err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		if cw := info.CloseWait(); len(cw) > 0 {
			t.Fatalf("%s holds CLOSE_WAIT sockets before any traffic: %v", p.Name, cw)
		}
		base[p] = info
	}
	return base
}

// CheckNoLeaks waits (at most d) until every process of base holds no
// CLOSE_WAIT socket and exactly its baseline number of descriptors.
func CheckNoLeaks(t testing.TB, base map[*Process]FDs, d time.Duration) {
	t.Helper()
	for p, b := range base {
		Eventually(t, d, p.Name+": descriptors back to the baseline, no CLOSE_WAIT", func() error {
			if p.Exited() {
				return fmt.Errorf("%s exited: %v", p.Name, p.Err())
			}
			now, err := OpenFDs(p.Pid())
			if err != nil {
				return err
			}
			if cw := now.CloseWait(); len(cw) > 0 {
				return fmt.Errorf("%d sockets in CLOSE_WAIT: %v\nnow: %s", len(cw), cw, now)
			}
			if now.Count != b.Count {
				return fmt.Errorf("%d descriptors, baseline %d\nbaseline: %snow: %s", now.Count, b.Count, b, now)
			}
			return nil
		})
	}
}

// CheckNoCloseWait waits (at most d) until none of procs holds a
// CLOSE_WAIT socket.
func CheckNoCloseWait(t testing.TB, d time.Duration, procs ...*Process) {
	t.Helper()
	for _, p := range procs {
		Eventually(t, d, p.Name+": no CLOSE_WAIT", func() error {
			now, err := OpenFDs(p.Pid())
			if err != nil {
				return err
			}
			if cw := now.CloseWait(); len(cw) > 0 {
				return fmt.Errorf("%d sockets in CLOSE_WAIT: %v", len(cw), cw)
			}
			return nil
		})
	}
}

// Listening reports whether pid has a TCP socket listening on addr.
func Listening(pid int, addr string) bool {
	_, ok := ListeningSocket(pid, addr)
	return ok
}

// ListeningSocket returns pid's TCP socket listening on addr, if any.
func ListeningSocket(pid int, addr string) (Socket, bool) {
	info, err := OpenFDs(pid)
	if err != nil {
		return Socket{}, false
	}
	for _, s := range info.Sockets {
		if s.State == StateListen && s.Local == addr {
			return s, true
		}
	}
	return Socket{}, false
}

// WaitListening waits (at most d) until a TCP listener answers at addr.
func WaitListening(t testing.TB, addr string, d time.Duration) {
	t.Helper()
	Eventually(t, d, addr+" to listen", func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// UDPSocket describes the UDP socket bound to 127.0.0.1:port, from
// /proc/net/udp: the bytes waiting to be read and the datagrams the kernel
// dropped because the receive buffer was full.
func UDPSocket(port int) (rxQueue, drops int, err error) {
	b, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return 0, 0, err
	}
	local := fmt.Sprintf("0100007F:%04X", port)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 13 || f[1] != local {
			continue
		}
		_, rx, _ := strings.Cut(f[4], ":")
		q, err1 := strconv.ParseInt(rx, 16, 64)
		d, err2 := strconv.Atoi(f[12])
		if err := errors.Join(err1, err2); err != nil {
			return 0, 0, fmt.Errorf("parse %q: %w", line, err)
		}
		return int(q), d, nil
	}
	return 0, 0, fmt.Errorf("no UDP socket on port %d", port)
}
