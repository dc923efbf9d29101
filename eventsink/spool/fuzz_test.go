package spool

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzOpenSegment feeds arbitrary bytes to Open as a segment file: Open must
// return an error or a consistent spool, never panic.
func FuzzOpenSegment(f *testing.F) {
	var valid []byte
	for i := uint64(1); i <= 3; i++ {
		valid = appendRecord(valid, i, time.Unix(0, 0), 1, "1.2.3.4:5", []byte("A;x=1;END"))
	}
	f.Add(valid)
	f.Add(valid[:len(valid)-4])
	f.Add(append(append([]byte(nil), valid...), 0xff, 0, 0, 0, 1, 2, 3))
	f.Add([]byte{})
	f.Add([]byte{19, 0, 0, 0})
	// The fuzzer checks logic, not durability: skip the fsyncs.
	saved := fsync
	fsync = func(*os.File) error { return nil }
	f.Cleanup(func() { fsync = saved })
	f.Fuzz(func(t *testing.T, seg []byte) {
		var s *Spool
		// os.MkdirTemp: t.TempDir's clean-up is slow enough here to starve the fuzzer.
		dir, err := os.MkdirTemp("", "spoolfuzz")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.WriteFile(filepath.Join(dir, segName(1)), seg, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err = Open(dir, Options{SegmentSize: 1 << 20})
		if err != nil {
			return
		}
		defer s.Close()
		st := s.Stats()
		recs, err := s.Read(1, 1<<20, 1<<30)
		if err != nil {
			t.Fatalf("Read after Open: %v", err)
		}
		var size int64
		for i, r := range recs {
			if r.Seq != uint64(i)+1 {
				t.Fatalf("record %d has sequence %d", i, r.Seq)
			}
			size += recordSize(r.Source, r.Data)
		}
		if size != st.Bytes || st.NextSeq != uint64(len(recs))+1 {
			t.Fatalf("%d records of %d bytes, stats %+v", len(recs), size, st)
		}
		if fi, err := os.Stat(filepath.Join(dir, segName(1))); err == nil && fi.Size() != size {
			t.Fatalf("segment is %d bytes after repair, records %d", fi.Size(), size)
		}
		seq, err := s.Append(2, "src", []byte("new"))
		if err != nil || seq != st.NextSeq {
			t.Fatalf("Append = %d, %v; want %d", seq, err, st.NextSeq)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s2, err := Open(dir, Options{SegmentSize: 1 << 20})
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer s2.Close()
		recs2, err := s2.Read(1, 1<<20, 1<<30)
		if err != nil || len(recs2) != len(recs)+1 || s2.Stats().TornTruncated != 0 {
			t.Fatalf("reopen read %d records, %v, stats %+v", len(recs2), err, s2.Stats())
		}
	})
}

// FuzzDecodeRecords feeds arbitrary bytes to the record decoder: it must
// stop at the first bad record without panicking, and every record it
// accepts must encode back to the same bytes.
func FuzzDecodeRecords(f *testing.F) {
	var valid []byte
	for i := uint64(1); i <= 3; i++ {
		valid = appendRecord(valid, i, time.Unix(1, 2), 2, "src", []byte("line"))
	}
	f.Add(valid)
	f.Add(valid[:20])
	f.Add([]byte{0xff, 0xff, 0xff, 0x03, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		hdr := make([]byte, headerSize)
		var body []byte
		var off int64
		for {
			rec, n, err := readRecord(r, hdr, &body)
			if err != nil {
				var torn errTorn
				if err != io.EOF && !errors.As(err, &torn) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			again := appendRecord(nil, rec.Seq, rec.Time, rec.Framing, rec.Source, rec.Data)
			if int64(len(again)) != n || !bytes.Equal(again, in[off:off+n]) {
				t.Fatalf("record at %d does not encode back", off)
			}
			off += n
		}
	})
}
