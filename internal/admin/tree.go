package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/relaychain/relaychain/mux"
)

// TreeTimeout bounds a tree request on the admin socket, both ends. The
// node answers within its own tree timeout (5 s by default), well before.
const TreeTimeout = 30 * time.Second

// SetTree makes the socket answer "tree" requests with tree (the node's
// Tree); without it they are answered with an error. Call before Serve.
func (s *Socket) SetTree(tree func(context.Context) (mux.TreeNode, error)) { s.tree = tree }

// serveTree answers a "tree" request on c: the tree as one JSON object,
// or {"error": "..."}.
func (s *Socket) serveTree(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(TreeTimeout))
	if s.tree == nil {
		writeError(c, "this node does not collect the tree")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), TreeTimeout-time.Second)
	defer cancel()
	t, err := s.tree(ctx)
	if err != nil {
		writeError(c, err.Error())
		return
	}
	_ = json.NewEncoder(c).Encode(t)
}

func writeError(w io.Writer, msg string) {
	_ = json.NewEncoder(w).Encode(struct {
		Error string `json:"error"`
	}{msg})
}

// ErrRemote is an error the node answered with; the text after it is the
// node's.
var ErrRemote = errors.New("the node answered")

// QueryTree asks the node whose admin socket is at path for the status of
// the whole tree; only the root answers with it.
func QueryTree(path string, timeout time.Duration) (mux.TreeNode, error) {
	var t mux.TreeNode
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return t, fmt.Errorf("%w: no socket at %s", ErrNotRunning, path)
	}
	c, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return t, fmt.Errorf("%w: socket %s does not answer: %v", ErrNotRunning, path, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("tree\n")); err != nil {
		return t, fmt.Errorf("tree request to %s: %w", path, err)
	}
	var ans struct {
		Error string `json:"error"`
		mux.TreeNode
	}
	if err := json.NewDecoder(c).Decode(&ans); err != nil {
		return t, fmt.Errorf("tree answer from %s: %w", path, err)
	}
	if ans.Error != "" {
		return t, fmt.Errorf("%w: %s", ErrRemote, ans.Error)
	}
	return ans.TreeNode, nil
}

// WriteTree writes t for a person: one line per node, indented under its
// parent, with its role, version, state, uptime, sessions and the state of
// the link from its parent; a node that did not answer says why, and
// when it last did.
func WriteTree(w io.Writer, t mux.TreeNode) error {
	now := time.Now()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLE\tVERSION\tSTATE\tUPTIME\tSESSIONS\tLINK FROM PARENT\tDETAIL")
	var walk func(n mux.TreeNode, parent *mux.TreeNode, prefix, branch string)
	walk = func(n mux.TreeNode, parent *mux.TreeNode, prefix, branch string) {
		uptime, sessions := "-", "-"
		if n.State == mux.TreeOK {
			uptime = n.Uptime.Round(time.Second).String()
			sessions = fmt.Sprint(n.Sessions)
		}
		// A parent that did not answer gives its links as last known:
		// their ages now would mislead.
		link := "-"
		if parent != nil && parent.State == mux.TreeOK {
			link = linkString(*parent, n.Label, now)
		}
		var detail []string
		if n.Detail != "" {
			detail = append(detail, n.Detail)
		}
		if n.State != mux.TreeOK {
			if n.AsOf.IsZero() {
				detail = append(detail, "never answered")
			} else {
				detail = append(detail, "last answer "+n.AsOf.Format("2006-01-02 15:04:05"))
			}
		}
		if n.Truncated {
			detail = append(detail, "nodes below left out (answer size cap)")
		}
		fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", prefix+branch, n.Label, dash(n.Role), dash(shortVersion(n.Version)),
			n.State, uptime, sessions, link, strings.Join(detail, "; "))
		next := prefix
		switch branch {
		case "├─ ":
			next += "│  "
		case "└─ ":
			next += "   "
		}
		for i, c := range n.Children {
			b := "├─ "
			if i == len(n.Children)-1 {
				b = "└─ "
			}
			walk(c, &n, next, b)
		}
	}
	walk(t, nil, "", "")
	return tw.Flush()
}

// linkString is the state of parent's link to peer: "up 5m3s, rtt 1.2ms",
// "down 40s", "down, never up", or "-" when parent's answer has no such
// link.
func linkString(parent mux.TreeNode, peer string, now time.Time) string {
	l, ok := parent.Link(peer)
	if !ok {
		return "-"
	}
	if l.Up {
		s := "up " + now.Sub(l.Since).Round(time.Second).String()
		if l.RTT > 0 {
			s += ", rtt " + l.RTT.Round(time.Microsecond).String()
		}
		return s
	}
	if l.Since.IsZero() {
		return "down, never up"
	}
	return "down " + now.Sub(l.Since).Round(time.Second).String()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shortVersion is the version's release alone ("v1.4.0" of "relay v1.4.0
// (commit ..., built ...)"), for a table; the JSON has all of it.
func shortVersion(v string) string {
	if f := strings.Fields(v); len(f) >= 2 {
		return f[1]
	}
	return v
}
