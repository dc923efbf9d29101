package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// makeRoom applies the full policy for a record of size bytes.
func (s *Spool) makeRoom(size int64) error {
	if s.opts.Full == Refuse {
		s.stats.RefusedFull++
		if !s.full {
			s.full = true
			s.log.Warnf("spool: full (%d of %d bytes), refusing new events", s.stats.Bytes, s.opts.MaxBytes)
		}
		return ErrFull
	}
	for s.stats.Bytes+size > s.opts.MaxBytes && len(s.segs) > 0 {
		g := s.segs[0]
		if g.count == 0 && len(s.segs) == 1 {
			break // nothing left to drop
		}
		if g.f != nil {
			// Keep a file named after nextSeq before the last records go, so
			// sequence numbers survive a crash right after the drop.
			if _, err := s.roll(); err != nil {
				return err
			}
		}
		dropped := g.count
		if s.acked >= g.base {
			dropped = g.last() - min(s.acked, g.last())
		}
		if err := s.removeOldest(); err != nil {
			return err
		}
		s.stats.DroppedFull += dropped
		s.log.WithField("segment", filepath.Base(g.path)).Warnf(
			"spool: full (%d bytes), dropped %d oldest events (sequence %d to %d)",
			s.opts.MaxBytes, dropped, g.last()-dropped+1, g.last())
	}
	return nil
}

// roll closes the active segment and starts a new one at nextSeq.
func (s *Spool) roll() (*segment, error) {
	if g := s.active(); g != nil {
		if s.dirty {
			s.stats.Syncs++
			if err := fsync(g.f); err != nil {
				s.log.Errorf("spool: sync segment %s: %v", filepath.Base(g.path), err)
			}
			s.dirty = false
		}
		g.f.Close()
		g.f = nil
		if g.count == 0 {
			// An empty segment is replaced by the new one.
			if err := s.removeLast(); err != nil {
				return nil, err
			}
		}
	}
	g := &segment{base: s.nextSeq, path: filepath.Join(s.dir, segName(s.nextSeq))}
	f, err := os.OpenFile(g.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create segment: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		os.Remove(g.path)
		return nil, err
	}
	g.f = f
	s.segs = append(s.segs, g)
	return g, nil
}

// removeOldest deletes the oldest segment.
func (s *Spool) removeOldest() error {
	g := s.segs[0]
	if err := s.remove(g); err != nil {
		return err
	}
	s.segs = s.segs[1:]
	return nil
}

// removeLast deletes the newest segment.
func (s *Spool) removeLast() error {
	g := s.segs[len(s.segs)-1]
	if err := s.remove(g); err != nil {
		return err
	}
	s.segs = s.segs[:len(s.segs)-1]
	return nil
}

func (s *Spool) remove(g *segment) error {
	if g.f != nil {
		g.f.Close()
		g.f = nil
		s.dirty = false
	}
	s.rd.forget(g)
	if err := os.Remove(g.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.broken = fmt.Errorf("spool unusable: remove segment: %w", err)
		return s.broken
	}
	s.stats.Bytes -= g.size
	return nil
}
