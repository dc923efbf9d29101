package spool

import (
	"errors"
	"os"
	"time"
)

// syncLoop flushes written records at most every d, until Close.
func (s *Spool) syncLoop(d time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.syncDirty()
		}
	}
}

// syncDirty fsyncs the active segment if records were written since the last
// fsync. The fsync runs without the lock, so appends go on meanwhile.
func (s *Spool) syncDirty() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	var f *os.File
	if g := s.active(); g != nil && s.dirty {
		f = g.f
		s.dirty = false
		s.stats.Syncs++
	}
	ack, acked, reserved := s.ackDirty, s.acked, s.reserved
	if ack {
		// Take metaMu before letting go of mu: a later writer of the ack
		// file, with newer values, writes after this one.
		s.ackDirty = false
		s.metaMu.Lock()
	}
	hook := s.afterSync
	s.mu.Unlock()
	if ack {
		err := writeAck(s.dir, acked, reserved)
		s.metaMu.Unlock()
		if err != nil {
			s.log.Errorf("spool: %v", err)
			s.mu.Lock()
			s.ackDirty = true
			s.mu.Unlock()
		}
	}
	if f != nil {
		if err := fsync(f); err != nil && !errors.Is(err, os.ErrClosed) {
			s.log.Errorf("spool: sync segment: %v", err)
			s.mu.Lock()
			s.dirty = true
			s.mu.Unlock()
		}
	}
	if hook != nil && (f != nil || ack) {
		hook()
	}
}

// writeMeta replaces the ack file. The caller holds mu.
func (s *Spool) writeMeta(acked, reserved uint64) error {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	return writeAck(s.dir, acked, reserved)
}
