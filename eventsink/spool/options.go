package spool

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sirupsen/logrus"
)

// Defaults for zero Options fields.
const (
	DefaultSegmentSize = 16 << 20
	DefaultMaxBytes    = 1 << 30
	DefaultMaxRecord   = 1 << 20
)

// FullPolicy says what Append does when the spool is full.
type FullPolicy int

const (
	// Refuse makes Append return ErrFull: the newest events are lost (the
	// intake tells the sender). This is the default.
	Refuse FullPolicy = iota
	// DropOldest deletes the oldest segments until the new record fits; their
	// unacknowledged records are counted in Stats.DroppedFull.
	DropOldest
)

// String returns "refuse" or "drop-oldest".
func (p FullPolicy) String() string {
	switch p {
	case Refuse:
		return "refuse"
	case DropOldest:
		return "drop-oldest"
	}
	return fmt.Sprintf("FullPolicy(%d)", int(p))
}

// SyncPolicy says when appended records are flushed to stable storage. The
// zero value is Always.
type SyncPolicy struct {
	interval time.Duration
}

// Always flushes every record before Append returns. Appends are serialised
// behind the fsync, so throughput is bounded by the disk's fsync latency.
func Always() SyncPolicy { return SyncPolicy{} }

// Interval flushes written records from a background goroutine at most every
// d (a zero or negative d means Always). Append returns once the record is
// written to the file: it survives a crash of the process, and a power loss
// can lose at most the last d of records.
func Interval(d time.Duration) SyncPolicy { return SyncPolicy{interval: max(d, 0)} }

// String returns "always" or "interval(d)".
func (p SyncPolicy) String() string {
	if p.interval == 0 {
		return "always"
	}
	return fmt.Sprintf("interval(%s)", p.interval)
}

// Options configure a Spool. The zero value is usable.
type Options struct {
	// SegmentSize is the size at which a segment is closed and the next one
	// started. Zero means DefaultSegmentSize (16 MiB).
	SegmentSize int64
	// MaxBytes bounds the total size of the segment files. It must be at least
	// SegmentSize. Zero means DefaultMaxBytes (1 GiB).
	MaxBytes int64
	// MaxRecord bounds len(source)+len(data) of one record. It must leave room
	// for the record header (27 bytes) within SegmentSize. Zero means the
	// smaller of DefaultMaxRecord (1 MiB) and what fits in a segment.
	MaxRecord int
	// Full is the policy when the spool is full. The zero value is Refuse.
	Full FullPolicy
	// Sync is the fsync policy. The zero value is Always.
	Sync SyncPolicy
	// Log receives the spool's log lines. Nil means no logging.
	Log *logrus.Entry
	// FirstSeq is the sequence number of a new spool's first record (a
	// directory with no segments and no ack file). Zero means 1. The
	// eventsink starts a new spool at the current time in microseconds, so
	// that a spool wiped by hand never reuses numbers the epproxy has
	// already seen (it would drop those events as duplicates).
	FirstSeq uint64
}

// withDefaults fills in the zero fields and checks the result, reporting
// every problem at once.
func (o Options) withDefaults() (Options, error) {
	if o.SegmentSize == 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = max(DefaultMaxBytes, o.SegmentSize)
	}
	if o.MaxRecord == 0 {
		o.MaxRecord = int(min(DefaultMaxRecord, o.SegmentSize-headerSize-bodyFixed))
	}
	if o.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		o.Log = logrus.NewEntry(l)
	}
	var errs []error
	if o.SegmentSize <= headerSize+bodyFixed {
		errs = append(errs, fmt.Errorf("segment size %d too small", o.SegmentSize))
	}
	if o.MaxBytes < o.SegmentSize {
		errs = append(errs, fmt.Errorf("max bytes %d smaller than segment size %d", o.MaxBytes, o.SegmentSize))
	}
	if o.MaxRecord <= 0 || int64(o.MaxRecord)+headerSize+bodyFixed > o.SegmentSize || o.MaxRecord > maxBody-bodyFixed {
		errs = append(errs, fmt.Errorf("max record %d does not fit in a segment of %d", o.MaxRecord, o.SegmentSize))
	}
	if o.Full != Refuse && o.Full != DropOldest {
		errs = append(errs, fmt.Errorf("unknown full policy %d", int(o.Full)))
	}
	if err := errors.Join(errs...); err != nil {
		return o, fmt.Errorf("%w: %w", ErrBadOptions, err)
	}
	return o, nil
}
