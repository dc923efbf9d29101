package spool

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// readCursor remembers where the last Read stopped, so that the next one
// goes on without searching.
type readCursor struct {
	seg  *segment
	f    *os.File
	seq  uint64 // sequence number of the record at off
	off  int64
	br   *bufio.Reader
	hdr  []byte
	body []byte
}

// forget drops the cursor if it is in g.
func (c *readCursor) forget(g *segment) {
	if c.seg == g {
		c.close()
	}
}

func (c *readCursor) close() {
	if c.f != nil {
		c.f.Close()
	}
	c.seg, c.f, c.seq, c.off = nil, nil, 0, 0
}

// seek positions the cursor at record seq of segment g.
func (c *readCursor) seek(g *segment, seq uint64) error {
	if c.seg != g {
		c.close()
		f, err := os.Open(g.path)
		if err != nil {
			return fmt.Errorf("open segment: %w", err)
		}
		c.seg, c.f, c.seq, c.off = g, f, g.base, 0
	}
	if c.hdr == nil {
		c.hdr = make([]byte, headerSize)
		c.br = bufio.NewReaderSize(nil, 64<<10)
	}
	if seq < c.seq {
		c.seq, c.off = g.base, 0
	}
	for c.seq < seq {
		if _, err := c.f.ReadAt(c.hdr, c.off); err != nil {
			return fmt.Errorf("%w: segment %s: %w", ErrCorrupt, filepath.Base(g.path), err)
		}
		c.off += headerSize + int64(binary.LittleEndian.Uint32(c.hdr))
		c.seq++
		if c.off > g.size {
			return fmt.Errorf("%w: segment %s: record beyond the end", ErrCorrupt, filepath.Base(g.path))
		}
	}
	return nil
}

// Read returns records in order of sequence number, from the first one not
// below from that is neither acknowledged nor dropped: at most maxCount
// records, and at most maxBytes of sources and data, except that the first
// record is returned whatever its size. Values below 1 are taken as 1. Read
// does not block: it returns no records when there are none.
func (s *Spool) Read(from uint64, maxCount, maxBytes int) ([]Record, error) {
	maxCount, maxBytes = max(maxCount, 1), max(maxBytes, 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	from = max(from, s.acked+1)
	var out []Record
	size := 0
	for _, g := range s.segs {
		if g.count == 0 || g.last() < from {
			continue
		}
		from = max(from, g.base)
		c := &s.rd
		if err := c.seek(g, from); err != nil {
			c.close()
			return nil, err
		}
		c.br.Reset(io.NewSectionReader(c.f, c.off, g.size-c.off))
		for from <= g.last() {
			rec, n, err := readRecord(c.br, c.hdr, &c.body)
			if err == nil && rec.Seq != from {
				err = fmt.Errorf("sequence %d, want %d", rec.Seq, from)
			}
			if err != nil {
				c.close()
				return nil, fmt.Errorf("%w: segment %s: %w", ErrCorrupt, filepath.Base(g.path), err)
			}
			size += len(rec.Source) + len(rec.Data)
			if len(out) > 0 && size > maxBytes {
				return out, nil
			}
			out = append(out, rec)
			c.off += n
			c.seq++
			from++
			if len(out) == maxCount {
				return out, nil
			}
		}
	}
	return out, nil
}

// Wait blocks until there is a record to Read from position from, the
// context ends (its error is returned) or the spool is closed (ErrClosed).
func (s *Spool) Wait(ctx context.Context, from uint64) error {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return ErrClosed
		}
		if s.nextSeq > max(from, s.acked+1) {
			s.mu.Unlock()
			return nil
		}
		ch := s.notify
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
