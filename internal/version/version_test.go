package version

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestStringDefaults(t *testing.T) {
	got := format("relay", "dev", "unknown", "unknown", nil)
	want := "relay dev (commit unknown, built unknown, " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + ")"
	if got != want {
		t.Fatalf("format = %q, want %q", got, want)
	}
}

func TestStringLinkerValuesWin(t *testing.T) {
	info := &debug.BuildInfo{Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123"},
		{Key: "vcs.time", Value: "2020-01-01T00:00:00Z"},
	}}
	got := format("epproxy", "1.2.0", "3f2a9c1", "2026-11-21", info)
	if !strings.HasPrefix(got, "epproxy 1.2.0 (commit 3f2a9c1, built 2026-11-21, go") {
		t.Fatalf("format = %q", got)
	}
}

func TestStringFallsBackToBuildInfo(t *testing.T) {
	info := &debug.BuildInfo{Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123"},
		{Key: "vcs.time", Value: "2020-01-01T00:00:00Z"},
		{Key: "vcs.modified", Value: "true"},
	}}
	got := format("gwproxy", "dev", "unknown", "unknown", info)
	if !strings.HasPrefix(got, "gwproxy dev (commit 0123456789ab-dirty, built 2020-01-01T00:00:00Z, go") {
		t.Fatalf("format = %q", got)
	}
}

func TestStringIsOneLine(t *testing.T) {
	got := String("eventsink")
	if strings.Contains(got, "\n") || !strings.HasPrefix(got, "eventsink "+Version+" (commit ") {
		t.Fatalf("String = %q", got)
	}
}

// A build without a tag, stamped with "git describe --always", once gave
// "relay 3f2a9c1 (commit 3f2a9c1, ...)": the commit is shown once.
func TestStringCommitOnce(t *testing.T) {
	tail := ", built 2026-11-21T10:04:05Z, " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + ")"
	for _, tc := range []struct{ ver, commit, want string }{
		{"3f2a9c1", "3f2a9c1", "relay dev (commit 3f2a9c1" + tail},
		{"3f2a9c1-dirty", "3f2a9c1", "relay dev (commit 3f2a9c1" + tail},
		{"3f2a9c1-dirty", "3f2a9c1-dirty", "relay dev (commit 3f2a9c1-dirty" + tail},
		{"3f2a9c1d0e", "3f2a9c1", "relay dev (commit 3f2a9c1" + tail},
		{"dev", "3f2a9c1-dirty", "relay dev (commit 3f2a9c1-dirty" + tail},
		// A tag is kept, and so is git describe's form past a tag.
		{"v1.2.0", "3f2a9c1", "relay v1.2.0 (commit 3f2a9c1" + tail},
		{"v1.2.0-3-g3f2a9c1", "3f2a9c1", "relay v1.2.0-3-g3f2a9c1 (commit 3f2a9c1" + tail},
		// Numbers that happen to be hexadecimal are versions, not commits.
		{"2026", "2026abc", "relay 2026 (commit 2026abc" + tail},
	} {
		got := format("relay", tc.ver, tc.commit, "2026-11-21T10:04:05Z", nil)
		if got != tc.want {
			t.Errorf("format(%q, %q) = %q, want %q", tc.ver, tc.commit, got, tc.want)
		}
		if strings.Count(got, "3f2a9c1") > 1 && !strings.Contains(tc.ver, "-g") {
			t.Errorf("format(%q, %q) = %q: the commit twice", tc.ver, tc.commit, got)
		}
	}
}

// A hash-only version with no commit stamped is checked against the
// commit the Go toolchain recorded.
func TestStringCommitOnceFromBuildInfo(t *testing.T) {
	info := &debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}}}
	got := format("relay", "0123456", "unknown", "unknown", info)
	if !strings.HasPrefix(got, "relay dev (commit 0123456789ab, built unknown, go") {
		t.Fatalf("format = %q", got)
	}
}
