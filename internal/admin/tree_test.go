package admin

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
)

// serveTree starts a socket at path whose tree requests tree answers.
func serveTree(t *testing.T, path string, tree func(context.Context) (mux.TreeNode, error)) {
	t.Helper()
	s, err := ListenSocket(path, func() mux.NodeStatus { return mux.NodeStatus{} }, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	s.SetTree(tree)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve()
	}()
	t.Cleanup(func() {
		_ = s.Close()
		<-done
	})
}

func sampleTree() mux.TreeNode {
	now := time.Now()
	return mux.TreeNode{Label: "epp", State: mux.TreeOK, Role: "root", Version: "epproxy v1.4.0 (commit abc, built x)",
		Uptime: time.Hour, Sessions: 2, AsOf: now,
		Links: []mux.TreeLink{{Peer: "relay-a", Side: "child", Up: true, Since: now.Add(-time.Minute), RTT: 1500 * time.Microsecond},
			{Peer: "relay-b", Side: "child", Since: now.Add(-30 * time.Second)}},
		Children: []mux.TreeNode{
			{Label: "relay-a", State: mux.TreeOK, Role: "relay", Version: "relay v1.4.0", Uptime: time.Minute, Sessions: 1, AsOf: now,
				Links: []mux.TreeLink{{Peer: "gwp-a", Side: "child", Up: true, Since: now.Add(-time.Minute)}},
				Children: []mux.TreeNode{{Label: "gwp-a", State: mux.TreeNoAnswer, Detail: "no answer within 2.8s", Role: "leaf",
					Version: "gwproxy v1.4.0", AsOf: now.Add(-time.Hour)}}},
			{Label: "relay-b", State: mux.TreeUnreachable, Detail: "link down", Role: "relay",
				Children: []mux.TreeNode{{Label: "gwp-b", State: mux.TreeUnreachable, Detail: "below relay-b"}}},
		}}
}

func TestSocketTree(t *testing.T) {
	path := filepath.Join(t.TempDir(), "epproxy.sock")
	want := sampleTree()
	serveTree(t, path, func(ctx context.Context) (mux.TreeNode, error) {
		if _, ok := ctx.Deadline(); !ok {
			return mux.TreeNode{}, errors.New("no deadline")
		}
		return want, nil
	})
	got, err := QueryTree(path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var labels []string
	got.Walk(func(n mux.TreeNode, d int) { labels = append(labels, fmt.Sprintf("%d:%s:%s", d, n.Label, n.State)) })
	if s := strings.Join(labels, " "); s != "0:epp:ok 1:relay-a:ok 2:gwp-a:no answer 1:relay-b:unreachable 2:gwp-b:unreachable" {
		t.Errorf("tree: %s", s)
	}
}

func TestSocketTreeError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.sock")
	serveTree(t, path, func(context.Context) (mux.TreeNode, error) {
		return mux.TreeNode{}, fmt.Errorf("%w: relay-x is a relay", mux.ErrNotRoot)
	})
	_, err := QueryTree(path, 5*time.Second)
	if !errors.Is(err, ErrRemote) || !strings.Contains(err.Error(), "only the root can show the tree: relay-x is a relay") {
		t.Errorf("tree from a relay: %v", err)
	}
	if _, err := QueryTree(filepath.Join(t.TempDir(), "none.sock"), time.Second); !errors.Is(err, ErrNotRunning) {
		t.Errorf("no socket: %v", err)
	}
}

func TestWriteTree(t *testing.T) {
	var b strings.Builder
	if err := WriteTree(&b, sampleTree()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		`(?m)^NODE +ROLE +VERSION +STATE +UPTIME +SESSIONS +LINK FROM PARENT +DETAIL$`,
		`(?m)^epp +root +v1\.4\.0 +ok +1h0m0s +2 +- *$`,
		`(?m)^├─ relay-a +relay +v1\.4\.0 +ok +1m0s +1 +up 1m0s, rtt 1\.5ms *$`,
		`(?m)^│  └─ gwp-a +leaf +v1\.4\.0 +no answer +- +- +up 1m0s +no answer within 2\.8s; last answer \d{4}-`,
		`(?m)^└─ relay-b +relay +- +unreachable +- +- +down 30s +link down; never answered$`,
		// Below a node that did not answer, its links are last known: no age.
		`(?m)^   └─ gwp-b +- +- +unreachable +- +- +- +below relay-b; never answered$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("no match for %s in:\n%s", want, out)
		}
	}
}
