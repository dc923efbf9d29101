package mux

import (
	"crypto/subtle"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"
)

// This file checks the users of the entries that take the destination
// from their client (PROTOCOL.md section 4.1): a password given in clear
// or as a bcrypt hash, compared in constant time, and the failures of one
// source address capped, so that a client cannot try passwords fast.

// ErrAuthFailed: a client of an entry gave a wrong user name or password,
// or its source failed too often (a wrapped ErrBadRequest).
var ErrAuthFailed = fmt.Errorf("%w: authentication failed", ErrBadRequest)

// The cap on failed authentications: a source address that failed
// AuthFailMax times within AuthFailWindow (counted from its first failure)
// is refused every authentication, whatever it gives, until the window
// ends. The cap is the node's, over all its entries.
const (
	AuthFailMax    = 5
	AuthFailWindow = time.Minute
	// authSourcesMax bounds the sources counted at once; beyond, the
	// oldest window is forgotten.
	authSourcesMax = 10000
)

// IsPasswordHash reports whether s has the form of a bcrypt hash this
// package takes ("$2a$", "$2b$" or "$2y$", a cost and the hash).
func IsPasswordHash(s string) bool {
	_, err := bcrypt.Cost([]byte(s))
	return err == nil
}

// hasUsers reports whether the entry asks its clients for a user.
func (e *AddrEntry) hasUsers() bool { return len(e.Users) > 0 || len(e.PasswordHashes) > 0 }

// dummyHash is compared against when a user name is unknown, so that an
// unknown name costs as much as a wrong password.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("never a password"), bcrypt.DefaultCost)
	return h
})

// checkPassword reports whether user and pass are a user of e: its clear
// password compared in constant time, or its bcrypt hash.
func (e *AddrEntry) checkPassword(user, pass string) bool {
	if h, ok := e.PasswordHashes[user]; ok {
		return bcrypt.CompareHashAndPassword([]byte(h), []byte(pass)) == nil
	}
	want, ok := e.Users[user]
	if !ok {
		if len(e.PasswordHashes) > 0 {
			_ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(pass))
		}
		want = "\x00never"
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(pass)) == 1 && ok
}

// authFails counts the failed authentications of each source address.
type authFails struct {
	mu      sync.Mutex
	max     int           // 0: AuthFailMax
	window  time.Duration // 0: AuthFailWindow
	sources map[netip.Addr]*authWindow
}

type authWindow struct {
	start time.Time
	fails int
}

func (a *authFails) limits() (int, time.Duration) {
	max, window := a.max, a.window
	if max <= 0 {
		max = AuthFailMax
	}
	if window <= 0 {
		window = AuthFailWindow
	}
	return max, window
}

// blocked reports whether src has used up its failures, and until when.
func (a *authFails) blocked(src netip.Addr, now time.Time) (bool, time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	max, window := a.limits()
	w := a.sources[src]
	if w == nil || now.Sub(w.start) >= window {
		return false, time.Time{}
	}
	return w.fails >= max, w.start.Add(window)
}

// fail counts a failure of src and returns its failures in its window.
func (a *authFails) fail(src netip.Addr, now time.Time) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, window := a.limits()
	if a.sources == nil {
		a.sources = map[netip.Addr]*authWindow{}
	}
	w := a.sources[src]
	if w == nil || now.Sub(w.start) >= window {
		if w == nil && len(a.sources) >= authSourcesMax {
			a.forgetLocked(now, window)
		}
		w = &authWindow{start: now}
		a.sources[src] = w
	}
	w.fails++
	return w.fails
}

// forgetLocked drops the windows that ended, else the oldest.
func (a *authFails) forgetLocked(now time.Time, window time.Duration) {
	var oldest netip.Addr
	for src, w := range a.sources {
		if now.Sub(w.start) >= window {
			delete(a.sources, src)
		} else if !oldest.IsValid() || w.start.Before(a.sources[oldest].start) {
			oldest = src
		}
	}
	if len(a.sources) >= authSourcesMax && oldest.IsValid() {
		delete(a.sources, oldest)
	}
}

// authenticate decides on user and pass, given by the client conn of the
// entry e: refused at once while the client's source address is over the
// cap, else checked. A failure is counted for the source and logged at
// level 2 with the entry, the user name and the client (never the
// password), flood-proof; it returns ErrAuthFailed.
func (n *Node) authenticate(e *AddrEntry, conn net.Conn, user, pass string) error {
	src := netip.Addr{}
	if ap, err := netip.ParseAddrPort(conn.RemoteAddr().String()); err == nil {
		src = ap.Addr().Unmap()
	}
	log := n.log.WithFields(logrus.Fields{"component": "entry", "entry": e.Name, "client": conn.RemoteAddr().String(), "user": user})
	now := time.Now()
	if over, until := n.authFails.blocked(src, now); over {
		max, window := n.authFails.limits()
		n.authLog.note(src.String(), log, fmt.Sprintf("authentication refused: %s failed %d times within %s; refused until %s",
			src, max, window, until.Format(time.TimeOnly)))
		return fmt.Errorf("%w: user %q: too many failures from %s", ErrAuthFailed, user, src)
	}
	if e.checkPassword(user, pass) {
		return nil
	}
	fails := n.authFails.fail(src, now)
	max, _ := n.authFails.limits()
	n.authLog.note(src.String(), log.WithField("failures", fails), fmt.Sprintf("authentication failed: user %s from %s (%d of %d)",
		quoteUser(user), src, fails, max))
	return fmt.Errorf("%w: user %q: wrong user name or password", ErrAuthFailed, user)
}

// quoteUser quotes a user name for a log line: it comes from the client.
func quoteUser(u string) string {
	q := fmt.Sprintf("%q", u)
	if strings.Trim(q, `"`) == u && !strings.ContainsAny(u, " =") {
		return u
	}
	return q
}
