package e2e

import (
	"net"
	"testing"
	"time"
)

// TestEndClassification checks how runSide (target_test.go) reads the end
// of a session: a session whose peer half-closes is seen as a clean end,
// one whose peer resets (even while this side is writing, so that the
// writer may consume the ECONNRESET) as a reset.
func TestEndClassification(t *testing.T) {
	for _, tc := range []struct {
		name    string
		reset   bool
		writing bool
		want    endKind
	}{
		{"FIN", false, false, endClean},
		{"RST idle", true, false, endReset},
		{"RST while writing", true, true, endReset},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			accepted := make(chan *net.TCPConn, 1)
			go func() {
				c, err := ln.AcceptTCP()
				if err != nil {
					close(accepted)
					return
				}
				accepted <- c
			}()
			c, err := net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			peer := <-accepted
			if peer == nil {
				t.Fatal("accept failed")
			}
			defer peer.Close()
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			send := int64(0)
			if tc.writing {
				send = infinite
			}
			var pr progress
			done := make(chan *sideResult, 1)
			go func() { done <- runSide(c, 1, 1, send, true, nil, &pr) }()
			if tc.writing {
				// Let the peer's receive buffer fill up, so the writer blocks.
				buf := make([]byte, 4096)
				if _, err := peer.Read(buf); err != nil {
					t.Fatal(err)
				}
			}
			if tc.reset {
				_ = peer.SetLinger(0)
				_ = peer.Close()
			} else {
				_ = peer.CloseWrite()
			}
			select {
			case r := <-done:
				if r.end != tc.want {
					t.Fatalf("got %s, want %s (%v)", r.end, tc.want, r)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("runSide did not return")
			}
		})
	}
}
