package mux_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// TestLabelClaimDrawsNoDowncalls: a child (evil) also claims another
// site's label (gwp-b), the own label of another child link of relay1: the
// claim is refused. gwp-b's link drops once and comes back: its route goes
// and comes back with its own link, never through evil, and a downcall by
// address to gwp-b's network never reaches evil.
func TestLabelClaimDrawsNoDowncalls(t *testing.T) {
	at := startAcceptTree(t)
	evil := dialScripted(t, at.evilAddr, "evil", mux.RoleLeaf, false)
	got := make(chan []byte, 4)
	go func() {
		for {
			st, err := evil.sess.AcceptStream()
			if err != nil {
				return
			}
			go func() {
				_ = st.SetDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 512)
				n, _ := io.ReadAtLeast(st, buf, 10)
				got <- buf[:n]
				_ = st.Close()
			}()
		}
	}()
	evil.send(mux.CtrlMsg{Type: mux.CtrlWhoReply, Labels: []string{"evil", "gwp-b"}})
	at.relayLog.waitLog(t, "the refusal", func(r logRecord) bool {
		return bytes.Contains([]byte(r.Message), []byte("refused label gwp-b announced by child evil"))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = at.b.Shutdown(ctx)
	muxtest.WaitFor(t, 10*time.Second, "gwp-b's route gone with its link", func() bool { _, ok := at.relay1.Routes()["gwp-b"]; return !ok })
	tun := muxtest.FastTuning()
	b2 := muxtest.StartNode(t, mux.Config{Label: "gwp-b", Role: mux.RoleLeaf, Tuning: tun, Serves: []string{"127.0.2.0/24", "127.0.3.0/24"},
		Links: []mux.LinkConfig{{Peer: "relay1", Parent: true, Dial: at.relay1.LinkAddr("gwp-b").String()}}})
	muxtest.WaitFor(t, 10*time.Second, "gwp-b back", func() bool {
		owner, err := at.root.ServedBy("127.0.2.7", 80)
		return err == nil && owner == "gwp-b" && len(b2.PathToRoot()) == 2
	})
	t.Logf("relay1 routes gwp-b via %s", at.relay1.Routes()["gwp-b"])
	go func() { _, _ = at.socksName(t, "127.0.2.7", 80) }()
	select {
	case b := <-got:
		t.Errorf("a downcall to 127.0.2.7 (gwp-b's accepted network) reached evil: %q", b)
	case <-time.After(3 * time.Second):
	}
}
