package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/events"
)

// reserveStep is how many sequence numbers Append reserves at a time.
const reserveStep = 1 << 16

// Stats are the spool's counters and sizes.
type Stats struct {
	Appended      uint64 // records appended since Open
	DroppedFull   uint64 // unacknowledged records deleted by DropOldest
	RefusedFull   uint64 // appends refused with ErrFull
	TornTruncated uint64 // torn records truncated by Open
	Syncs         uint64 // fsyncs of segment files
	Bytes         int64  // total size of the segment files
	Segments      int    // number of segment files
	NextSeq       uint64 // sequence number of the next record
	Acked         uint64 // highest acknowledged sequence number (0: none)
}

// Spool is a durable queue of events in a directory. Its methods are safe
// for concurrent use.
type Spool struct {
	dir  string
	opts Options
	log  *logrus.Entry
	lock *os.File

	mu      sync.Mutex
	segs    []*segment // oldest first; the last one is the active segment if its f is set
	nextSeq uint64
	acked   uint64
	// reserved is a sequence number stored in the ack file that no record
	// has gone past: after a crash numbering restarts above it, so a number
	// that a record lost with the page cache may have been sent with is
	// never reused.
	reserved uint64
	stats    Stats
	dirty    bool       // records written but not fsynced (Interval policy)
	ackDirty bool       // acked not yet in the ack file (Interval policy)
	metaMu   sync.Mutex // serialises writes of the ack file; taken after mu
	broken   error      // a failed write or fsync left the spool unusable
	full     bool       // the last append found the spool full (for logging)
	closed   bool
	notify   chan struct{} // closed and replaced when records are appended
	buf      []byte
	rd       readCursor

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
	afterSync func() // test hook, called after each background sync; set under mu
}

// Open opens the spool in dir, creating the directory if needed, repairs a
// torn last record and deletes acknowledged segments. Close releases it.
func Open(dir string, opts Options) (*Spool, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create spool directory: %w", err)
	}
	lock, err := lockDir(filepath.Join(dir, lockName))
	if err != nil {
		return nil, err
	}
	s := &Spool{dir: dir, opts: opts, log: opts.Log, lock: lock, notify: make(chan struct{}), stop: make(chan struct{})}
	if err := s.load(); err != nil {
		s.closeFiles()
		return nil, err
	}
	if d := opts.Sync.interval; d > 0 {
		s.wg.Add(1)
		go s.syncLoop(d)
	}
	return s, nil
}

// load reads the ack file and the segments.
func (s *Spool) load() error {
	os.Remove(filepath.Join(s.dir, ackTemp))
	acked, reserved, err := readAck(s.dir)
	if err != nil {
		return err
	}
	segs, err := listSegments(s.dir)
	if err != nil {
		return err
	}
	s.acked, s.reserved = acked, reserved
	s.nextSeq = max(acked, reserved) + 1
	if acked == 0 && reserved == 0 && len(segs) == 0 && s.opts.FirstSeq > 1 {
		// A new spool: number from FirstSeq; everything before counts as
		// acknowledged.
		s.acked = s.opts.FirstSeq - 1
		s.nextSeq = s.opts.FirstSeq
	}
	var prevLast uint64
	for i, g := range segs {
		if g.base <= prevLast {
			return fmt.Errorf("%w: segment %s overlaps the previous one", ErrCorrupt, filepath.Base(g.path))
		}
		torn, why, err := g.scan()
		if err != nil {
			return fmt.Errorf("segment %s: %w", filepath.Base(g.path), err)
		}
		if torn {
			s.stats.TornTruncated++
			s.log.WithField("segment", filepath.Base(g.path)).Errorf(
				"spool: torn record truncated after %d good records: %s", g.count, why)
		}
		prevLast = max(prevLast, g.last(), g.base)
		s.nextSeq = max(s.nextSeq, g.base+g.count)
		if g.last() <= s.acked {
			if err := os.Remove(g.path); err != nil {
				return fmt.Errorf("remove acknowledged segment: %w", err)
			}
			continue
		}
		if g.count == 0 && i < len(segs)-1 {
			// An empty segment that is not the last one carries no information.
			if err := os.Remove(g.path); err != nil {
				return fmt.Errorf("remove empty segment: %w", err)
			}
			continue
		}
		s.segs = append(s.segs, g)
		s.stats.Bytes += g.size
	}
	if n := len(s.segs); n > 0 {
		g := s.segs[n-1]
		if g.last() != s.nextSeq-1 {
			// The last segment is older than the ack: start a new one on append.
			return nil
		}
		f, err := os.OpenFile(g.path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return fmt.Errorf("open active segment: %w", err)
		}
		g.f = f
	}
	return nil
}

// active returns the segment appends go to, or nil.
func (s *Spool) active() *segment {
	if n := len(s.segs); n > 0 && s.segs[n-1].f != nil {
		return s.segs[n-1]
	}
	return nil
}

// Append stores one event and returns its sequence number. The event counts
// as received once Append returns nil. It returns ErrFull when the spool is
// full under the Refuse policy, ErrTooLarge for an event above
// Options.MaxRecord, and ErrClosed after Close.
func (s *Spool) Append(framing events.Framing, source string, data []byte) (uint64, error) {
	if len(source) > 0xffff || len(source)+len(data) > s.opts.MaxRecord {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(source)+len(data), s.opts.MaxRecord)
	}
	size := recordSize(source, data)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return 0, ErrClosed
	case s.broken != nil:
		return 0, s.broken
	}
	if s.stats.Bytes+size > s.opts.MaxBytes {
		if err := s.makeRoom(size); err != nil {
			return 0, err
		}
	} else if s.full {
		s.full = false
		s.log.Infof("spool: room again (%d of %d bytes used)", s.stats.Bytes, s.opts.MaxBytes)
	}
	g := s.active()
	if g == nil || g.size > 0 && g.size+size > s.opts.SegmentSize {
		var err error
		if g, err = s.roll(); err != nil {
			return 0, err
		}
	}
	if s.nextSeq > s.reserved {
		if err := s.writeMeta(s.acked, s.nextSeq+reserveStep); err != nil {
			return 0, err
		}
		s.reserved = s.nextSeq + reserveStep
	}
	seq := s.nextSeq
	s.buf = appendRecord(s.buf[:0], seq, time.Now(), framing, source, data)
	if _, err := g.f.Write(s.buf); err != nil {
		if terr := g.f.Truncate(g.size); terr != nil {
			s.broken = fmt.Errorf("spool unusable after failed write: %w", errors.Join(err, terr))
			s.log.Errorf("spool: %v", s.broken)
		}
		return 0, fmt.Errorf("write record: %w", err)
	}
	g.size += size
	g.count++
	s.stats.Bytes += size
	s.nextSeq++
	if s.opts.Sync.interval == 0 {
		s.stats.Syncs++
		if err := fsync(g.f); err != nil {
			s.broken = fmt.Errorf("spool unusable after failed fsync: %w", err)
			s.log.Errorf("spool: %v", s.broken)
			return 0, s.broken
		}
	} else {
		s.dirty = true
	}
	s.stats.Appended++
	close(s.notify)
	s.notify = make(chan struct{})
	return seq, nil
}

// Ack records that every record up to and including upTo was delivered and
// deletes the segments that hold only acknowledged records. Acknowledging
// less than before does nothing.
//
// Under the Always policy the ack file is replaced before Ack returns; under
// Interval(d) the background goroutine writes it within d (and Close does).
// A crash before then makes the next Open start from an older position: the
// forwarder sends some events again, and the receiver's deduplication drops
// them. Deleting segments early is safe: an acknowledged record is never
// needed again.
func (s *Spool) Ack(upTo uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return ErrClosed
	case upTo >= s.nextSeq:
		return fmt.Errorf("%w: %d, last is %d", ErrBadAck, upTo, s.nextSeq-1)
	case upTo <= s.acked:
		return nil
	}
	if s.opts.Sync.interval == 0 {
		if err := s.writeMeta(upTo, s.reserved); err != nil {
			return err
		}
	} else {
		s.ackDirty = true
	}
	s.acked = upTo
	for len(s.segs) > 0 && s.segs[0].last() <= s.acked {
		if err := s.removeOldest(); err != nil {
			return err
		}
	}
	return nil
}

// Stats returns the counters.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Segments = len(s.segs)
	st.NextSeq = s.nextSeq
	st.Acked = s.acked
	return st
}

// Dir returns the spool directory.
func (s *Spool) Dir() string { return s.dir }

// Close flushes and closes the spool, stops its goroutine and waits for it.
// Waiting readers return ErrClosed. Close is idempotent.
func (s *Spool) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.wg.Wait()
		s.mu.Lock()
		defer s.mu.Unlock()
		if g := s.active(); g != nil && s.dirty {
			s.stats.Syncs++
			if err := fsync(g.f); err != nil {
				s.closeErr = fmt.Errorf("sync segment: %w", err)
			}
		}
		if (s.ackDirty || s.reserved > s.nextSeq-1) && s.broken == nil {
			// A clean end: the next Open goes on without a gap.
			if err := s.writeMeta(s.acked, s.nextSeq-1); err != nil {
				s.closeErr = errors.Join(s.closeErr, err)
			}
		}
		s.closed = true
		close(s.notify)
		s.closeFiles()
	})
	return s.closeErr
}

// closeFiles closes every open file.
func (s *Spool) closeFiles() {
	for _, g := range s.segs {
		if g.f != nil {
			g.f.Close()
			g.f = nil
		}
	}
	s.rd.close()
	if s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
}
