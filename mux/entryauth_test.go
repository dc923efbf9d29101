package mux_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// Users of an entry may have a bcrypt hash instead of a clear password:
// the right password opens the session through either kind of entry, a
// wrong one or an unknown user is refused and logged with the user and
// the source, never the password. Once a source has failed as often as
// the cap allows within its window, it is refused even the right
// password, until the window ends.
func TestAddrEntryHashedPasswordsAndFailureCap(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("hunter2"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if !mux.IsPasswordHash(string(hash)) || mux.IsPasswordHash("hunter2") {
		t.Fatal("IsPasswordHash does not tell a hash from a password")
	}
	at := startAddrTreeWith(t, []string{"127.0.1.0/24"}, []string{"127.0.2.0/24"},
		addrTreeRules{socks: allowAll, connect: allowAll, hashes: map[string]string{"alice": string(hash)}})
	at.root.SetAuthLimit(3, time.Hour)

	reach := func(what string) {
		t.Helper()
		conn, rep, err := muxtest.SOCKSConnect(at.socks, "127.0.1.7", at.portA, "alice", "hunter2")
		if err != nil || rep != 0 {
			t.Fatalf("%s: socks as alice: rep %d, %v", what, rep, err)
		}
		if got := readName(t, conn); got != "site-a" {
			t.Fatalf("%s: socks as alice reached %q", what, got)
		}
		_ = conn.Close()
	}
	reach("hashed password")
	for _, u := range [][2]string{{"alice", "hunter2"}, {"ops", "s3cret"}} {
		hc, status, err := muxtest.HTTPConnect(at.connect, "127.0.1.7", at.portA, u[0], u[1])
		if err != nil || status != 200 {
			t.Fatalf("connect as %s: %d, %v", u[0], status, err)
		}
		if got := readName(t, hc); got != "site-a" {
			t.Fatalf("connect as %s reached %q", u[0], got)
		}
		_ = hc.Close()
	}

	// Three failures: a wrong password by SOCKS and by CONNECT, an
	// unknown user.
	if _, _, err := muxtest.SOCKSConnect(at.socks, "127.0.1.7", at.portA, "alice", "wr0ng-pass"); err == nil || !strings.Contains(err.Error(), "auth refused") {
		t.Fatalf("socks with a wrong password: %v; want the authentication refused", err)
	}
	if _, status, err := muxtest.HTTPConnect(at.connect, "127.0.1.7", at.portA, "alice", "wr0ng-pass"); err != nil || status != 407 {
		t.Fatalf("connect with a wrong password: %d, %v; want 407", status, err)
	}
	if _, _, err := muxtest.SOCKSConnect(at.socks, "127.0.1.7", at.portA, "bob", "hunter2"); err == nil {
		t.Fatal("socks as an unknown user was let in")
	}
	for i := 1; i <= 3; i++ {
		want := fmt.Sprintf("authentication failed: user %s from 127.0.0.1 (%d of 3)", map[bool]string{true: "bob", false: "alice"}[i == 3], i)
		rec := at.logs["root"].waitLog(t, want, func(r logRecord) bool { return r.Message == want })
		if rec.Data["client"] == nil || rec.Data["entry"] == nil || rec.Data["user"] == nil {
			t.Errorf("failure %d logged with %v", i, rec.Data)
		}
	}

	// Over the cap: the right password is refused too, by either entry.
	if _, _, err := muxtest.SOCKSConnect(at.socks, "127.0.1.7", at.portA, "alice", "hunter2"); err == nil {
		t.Fatal("socks as alice over the cap was let in")
	}
	if _, status, err := muxtest.HTTPConnect(at.connect, "127.0.1.7", at.portA, "ops", "s3cret"); err != nil || status != 407 {
		t.Fatalf("connect as ops over the cap: %d, %v; want 407", status, err)
	}
	at.logs["root"].waitLog(t, "the refusal over the cap", func(r logRecord) bool {
		return strings.HasPrefix(r.Message, "authentication refused: 127.0.0.1 failed 3 times within 1h0m0s; refused until ")
	})
	if rec, ok := at.logs["root"].find(func(r logRecord) bool {
		return strings.Contains(r.Message+fmt.Sprint(r.Data), "wr0ng-pass")
	}); ok {
		t.Errorf("a password was logged: %q %v", rec.Message, rec.Data)
	}

	// Once the window has ended (shortened here), the source may try
	// again.
	at.root.SetAuthLimit(3, time.Nanosecond)
	reach("after the window")
}
