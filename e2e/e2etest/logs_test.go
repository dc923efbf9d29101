package e2etest

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWaitLogFile checks that WaitLogFile finds every pattern after skip,
// in any order, and returns the end of the line of the last match.
func TestWaitLogFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.log")
	text := "1 link up [l=a]\n2 route added [label=b]\n3 route added [label=c]\n4 done\n"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	end := WaitLogFile(t, path, 0, time.Second, `route added \[label=c\]`, `link up`)
	if want := int64(len("1 link up [l=a]\n2 route added [label=b]\n3 route added [label=c]\n")); end != want {
		t.Fatalf("offset %d, want %d", end, want)
	}
	if end2 := WaitLogFile(t, path, end, time.Second, `done`); end2 != int64(len(text)) {
		t.Fatalf("offset %d after skip %d, want %d", end2, end, len(text))
	}
}

func TestLastLines(t *testing.T) {
	if got := LastLines([]byte("a\nb\nc\n"), 2); got != "b\nc" {
		t.Fatalf("got %q", got)
	}
	if got := LastLines([]byte("a"), 5); got != "a" {
		t.Fatalf("got %q", got)
	}
}

func TestLogFields(t *testing.T) {
	line := `26/12/03 07:20:29.123 3 session: aborted [dest=epp-main down=30 dur=5ms id=00ab reason="session aborted: by client" up=17 who=client]`
	got := LogFields(line)
	want := map[string]string{"dest": "epp-main", "down": "30", "dur": "5ms", "id": "00ab",
		"reason": "session aborted: by client", "up": "17", "who": "client"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s=%q, want %q", k, got[k], v)
		}
	}
}
