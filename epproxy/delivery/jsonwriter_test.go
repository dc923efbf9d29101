package delivery_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relaychain/relaychain/epproxy/delivery"
	"github.com/relaychain/relaychain/events"
)

func TestJSONWriter(t *testing.T) {
	var buf bytes.Buffer
	b := sampleBatch(t)
	b.Events = append(b.Events, events.Event{Seq: 10, Framing: events.Line, Source: "s", Data: []byte("bad \xff utf8 \"quoted\"")})
	if err := delivery.NewJSONWriter(&buf).Deliver(b.Sink, b.Events); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines: %q", len(lines), buf.String())
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"sink": "es-dmz1", "seq": float64(7), "source": "10.1.2.3:5140", "framing": "eif",
		"received": time.Unix(1700000000, 123).UTC().Format(time.RFC3339Nano), "event": "TEC_Event;msg='a;b';END",
	}
	for k, v := range want {
		if first[k] != v {
			t.Fatalf("%s = %v, want %v (line %s)", k, first[k], v, lines[0])
		}
	}
	var second map[string]any
	json.Unmarshal([]byte(lines[1]), &second)
	if _, ok := second["received"]; ok || second["framing"] != "line" {
		t.Fatalf("second line %s", lines[1])
	}
	var third map[string]any
	if err := json.Unmarshal([]byte(lines[2]), &third); err != nil || third["event"] != "bad \uFFFD utf8 \"quoted\"" {
		t.Fatalf("third line %s: %v", lines[2], err)
	}
}

func TestJSONWriterSyncsFile(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := delivery.NewJSONWriter(f)
	if err := w.Deliver("s", batchOf(t, "s", 1, 2).Events); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(f.Name())
	if n := strings.Count(string(b), "\n"); n != 2 {
		t.Fatalf("%d lines in file", n)
	}
}
