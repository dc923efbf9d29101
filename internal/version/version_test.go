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
