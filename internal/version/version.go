// Package version holds the build identity of the relaychain daemons.
//
// The variables are set at link time:
//
//	go build -ldflags "-X github.com/relaychain/relaychain/internal/version.Version=1.2.0 \
//	    -X github.com/relaychain/relaychain/internal/version.Commit=$(git rev-parse --short HEAD) \
//	    -X github.com/relaychain/relaychain/internal/version.Date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" ./relay
//
// Typical usage, in a daemon's -v output or start-up log line:
//
//	fmt.Println(version.String("relay"))
//	// relay 1.2.0 (commit 3f2a9c1, built 2026-11-21T10:04:05Z, go1.26.8 linux/amd64)
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Build identity, set with -ldflags "-X ...". The defaults mark a development build.
var (
	// Version is the release version, "dev" when not set.
	Version = "dev"
	// Commit is the VCS revision, "unknown" when not set; String then falls
	// back to the vcs.revision recorded by the Go toolchain, if any.
	Commit = "unknown"
	// Date is the build date, "unknown" when not set; String then falls back
	// to the vcs.time recorded by the Go toolchain, if any.
	Date = "unknown"
)

const unknown = "unknown"

// String returns the one-line version of the daemon called name:
//
//	NAME VERSION (commit COMMIT, built DATE, GOVERSION GOOS/GOARCH)
//
// The commit appears once: a VERSION that is only the commit again (a
// build stamped with "git describe --always" where no tag is reachable)
// is shown as "dev".
func String(name string) string {
	info, _ := debug.ReadBuildInfo()
	return format(name, Version, Commit, Date, info)
}

// format builds the line; info may be nil. Split out from String for tests.
func format(name, ver, commit, date string, info *debug.BuildInfo) string {
	if commit == "" {
		commit = unknown
	}
	if date == "" {
		date = unknown
	}
	if commit == unknown && info != nil {
		var rev, at string
		modified := false
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if rev != "" {
			if len(rev) > 12 {
				rev = rev[:12]
			}
			if modified {
				rev += "-dirty"
			}
			commit = rev
			if date == unknown && at != "" {
				date = at
			}
		}
	}
	if ver == "" || sameRevision(ver, commit) {
		ver = "dev"
	}
	return fmt.Sprintf("%s %s (commit %s, built %s, %s %s/%s)",
		name, ver, commit, date, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// sameRevision reports whether ver names the commit commit, as
// "git describe --always --dirty" writes it without a tag: both
// abbreviations of one hexadecimal revision, "-dirty" aside.
func sameRevision(ver, commit string) bool {
	v := strings.TrimSuffix(ver, "-dirty")
	c := strings.TrimSuffix(commit, "-dirty")
	if len(v) < 7 || len(c) < 7 || !isHex(v) || !isHex(c) {
		return false
	}
	return strings.HasPrefix(v, c) || strings.HasPrefix(c, v)
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
