package chain

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// TestNotifyService: with a notify socket given, a node that starts says
// READY=1, and one that took a running instance's place names itself the
// service's main process too, so that systemd follows it.
func TestNotifyService(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	log := logrus.NewEntry(logrus.New())
	buf := make([]byte, 256)
	for _, tc := range []struct {
		tookOver bool
		want     string
	}{
		{false, "READY=1"},
		{true, "MAINPID=" + strconv.Itoa(os.Getpid()) + "\nREADY=1"},
	} {
		notifyService(readyState(tc.tookOver), log)
		_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := pc.Read(buf)
		if err != nil {
			t.Fatalf("took over %v: no notification: %v", tc.tookOver, err)
		}
		if got := string(buf[:n]); got != tc.want {
			t.Errorf("took over %v: notified %q, want %q", tc.tookOver, got, tc.want)
		}
	}
}
