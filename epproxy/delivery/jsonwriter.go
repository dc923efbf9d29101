package delivery

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/relaychain/relaychain/events"
)

// JSONWriter writes events as JSON lines, one object per event:
//
//	{"sink":"es-dmz1","seq":42,"source":"10.1.2.3:5140","framing":"eif","received":"2026-01-02T03:04:05.123Z","event":"TEC_Event;msg='x';END"}
//
// "received" is left out when unknown. Bytes that are not valid UTF-8 in the
// event are replaced by U+FFFD. If the writer has a Sync method (an
// *os.File), Deliver calls it after the write. It is safe for concurrent use.
type JSONWriter struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

// NewJSONWriter returns a JSONWriter writing to w. The caller owns w.
func NewJSONWriter(w io.Writer) *JSONWriter { return &JSONWriter{w: w} }

// jsonEvent is the layout of one line.
type jsonEvent struct {
	Sink     string     `json:"sink"`
	Seq      uint64     `json:"seq"`
	Source   string     `json:"source"`
	Framing  string     `json:"framing"`
	Received *time.Time `json:"received,omitempty"`
	Event    string     `json:"event"`
}

// Deliver writes events, one line each, in one Write. Its signature fits
// Dedup.Process.
func (j *JSONWriter) Deliver(sink string, evs []events.Event) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.buf = j.buf[:0]
	for _, e := range evs {
		je := jsonEvent{Sink: sink, Seq: e.Seq, Source: e.Source, Framing: e.Framing.String(), Event: string(e.Data)}
		if !e.Time.IsZero() {
			t := e.Time.UTC()
			je.Received = &t
		}
		b, err := json.Marshal(je)
		if err != nil {
			return fmt.Errorf("encode event %d: %w", e.Seq, err)
		}
		j.buf = append(append(j.buf, b...), '\n')
	}
	if _, err := j.w.Write(j.buf); err != nil {
		return fmt.Errorf("write events of %s: %w", sink, err)
	}
	if s, ok := j.w.(interface{ Sync() error }); ok {
		if err := s.Sync(); err != nil {
			return fmt.Errorf("sync events of %s: %w", sink, err)
		}
	}
	return nil
}
