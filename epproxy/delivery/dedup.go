package delivery

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/relaychain/relaychain/events"
	"github.com/relaychain/relaychain/internal/atomicfile"
)

// Dedup remembers, per sink label, the highest sequence number delivered to
// the event server, so that events a sink sends again (after a lost ack or a
// reconnect) are not delivered twice. Its methods are safe for concurrent use.
//
// The state is kept in one JSON file, replaced atomically by Commit (write a
// temporary file, fsync, rename, fsync the directory). With the order
// deliver, Commit, ack, a kill -9 can at most deliver again the one batch
// that was in flight.
type Dedup struct {
	path string

	mu        sync.Mutex // guards delivered and the file
	delivered map[string]uint64

	sinksMu sync.Mutex
	sinks   map[string]*sync.Mutex // serialises Process per sink
}

// dedupFile is the file's layout.
type dedupFile struct {
	Version   int               `json:"version"`
	Delivered map[string]uint64 `json:"delivered"`
}

// OpenDedup loads the state from path; a missing file is an empty state. The
// directory must exist.
func OpenDedup(path string) (*Dedup, error) {
	d := &Dedup{path: path, delivered: map[string]uint64{}, sinks: map[string]*sync.Mutex{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return d, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read dedup state: %w", err)
	}
	var f dedupFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("parse dedup state %s: %w", path, err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("dedup state %s: %w: %d", path, events.ErrVersion, f.Version)
	}
	for k, v := range f.Delivered {
		d.delivered[k] = v
	}
	return d, nil
}

// Delivered returns the highest sequence number delivered for sink, 0 if none.
func (d *Dedup) Delivered(sink string) uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.delivered[sink]
}

// Filter returns the events of b not delivered yet (a sub-slice of b.Events,
// since sequence numbers increase within a batch).
func (d *Dedup) Filter(b *events.Batch) []events.Event {
	done := d.Delivered(b.Sink)
	for i := range b.Events {
		if b.Events[i].Seq > done {
			return b.Events[i:]
		}
	}
	return nil
}

// Commit records that every event of sink up to seq was delivered and
// persists the state before it returns. A seq not above the current one does
// nothing.
func (d *Dedup) Commit(sink string, seq uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if seq <= d.delivered[sink] {
		return nil
	}
	old, had := d.delivered[sink]
	d.delivered[sink] = seq
	if err := d.save(); err != nil {
		if had {
			d.delivered[sink] = old
		} else {
			delete(d.delivered, sink)
		}
		return err
	}
	return nil
}

// Forget removes sink from the state, for a sink whose spool was reset and
// numbers its events from 1 again.
func (d *Dedup) Forget(sink string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	old, had := d.delivered[sink]
	if !had {
		return nil
	}
	delete(d.delivered, sink)
	if err := d.save(); err != nil {
		d.delivered[sink] = old
		return err
	}
	return nil
}

// save writes the state atomically. The caller holds mu.
func (d *Dedup) save() error {
	b, err := json.MarshalIndent(dedupFile{Version: 1, Delivered: d.delivered}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode dedup state: %w", err)
	}
	return atomicfile.Write(d.path, filepath.Base(d.path)+".tmp", append(b, '\n'), nil)
}

// Process handles one batch the epproxy received: it filters out the events
// already delivered, calls deliver with the rest (if any), commits, and
// returns the Ack to send back. If deliver or the commit fails, no Ack must
// be sent. Batches of one sink are processed one at a time, so two sessions
// of the same sink (an old one draining, a new one after a reconnect) cannot
// deliver the same events twice.
func (d *Dedup) Process(b *events.Batch, deliver func(sink string, evs []events.Event) error) (events.Ack, error) {
	mu := d.sinkLock(b.Sink)
	mu.Lock()
	defer mu.Unlock()
	if fresh := d.Filter(b); len(fresh) > 0 {
		if err := deliver(b.Sink, fresh); err != nil {
			return events.Ack{}, fmt.Errorf("deliver events of %s: %w", b.Sink, err)
		}
		if err := d.Commit(b.Sink, fresh[len(fresh)-1].Seq); err != nil {
			return events.Ack{}, err
		}
	}
	return events.Ack{UpTo: b.LastSeq()}, nil
}

func (d *Dedup) sinkLock(sink string) *sync.Mutex {
	d.sinksMu.Lock()
	defer d.sinksMu.Unlock()
	mu := d.sinks[sink]
	if mu == nil {
		mu = new(sync.Mutex)
		d.sinks[sink] = mu
	}
	return mu
}
