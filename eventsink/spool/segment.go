package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/relaychain/relaychain/internal/atomicfile"
)

const (
	segSuffix = ".seg"
	ackName   = "ack"
	ackTemp   = "ack.tmp"
	lockName  = "lock"
)

// segment is one segment file. Its records have the sequence numbers
// base .. base+count-1.
type segment struct {
	base  uint64
	count uint64
	size  int64
	path  string
	f     *os.File // write handle of the active (last) segment, else nil
}

// last returns the sequence number of the last record (base-1 when empty).
func (g *segment) last() uint64 { return g.base + g.count - 1 }

func segName(base uint64) string { return fmt.Sprintf("%020d%s", base, segSuffix) }

// parseSegName returns the base of a segment file name.
func parseSegName(name string) (uint64, bool) {
	s, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(s) != 20 {
		return 0, false
	}
	base, err := strconv.ParseUint(s, 10, 64)
	if err != nil || base == 0 {
		return 0, false
	}
	return base, true
}

// listSegments returns the segments in dir, in order of base, not yet scanned.
func listSegments(dir string) ([]*segment, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read spool directory: %w", err)
	}
	var segs []*segment
	for _, e := range entries {
		if base, ok := parseSegName(e.Name()); ok && e.Type().IsRegular() {
			segs = append(segs, &segment{base: base, path: filepath.Join(dir, e.Name())})
		}
	}
	// os.ReadDir sorts by name, and names are zero-padded bases.
	return segs, nil
}

// scan checks the segment's records, sets count and size, and truncates the
// file after the last good record. It reports whether it truncated.
func (g *segment) scan() (torn bool, why string, err error) {
	f, err := os.OpenFile(g.path, os.O_RDWR, 0)
	if err != nil {
		return false, "", fmt.Errorf("open segment: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 256<<10)
	hdr := make([]byte, headerSize)
	var body []byte
	g.count, g.size = 0, 0
	for {
		rec, n, err := readRecord(br, hdr, &body)
		if err == io.EOF {
			return false, "", nil
		}
		var t errTorn
		if err == nil && rec.Seq != g.base+g.count {
			err = errTorn{fmt.Sprintf("sequence %d, want %d", rec.Seq, g.base+g.count)}
		}
		if errors.As(err, &t) {
			if err := f.Truncate(g.size); err != nil {
				return false, "", fmt.Errorf("truncate torn segment: %w", err)
			}
			if err := fsync(f); err != nil {
				return false, "", fmt.Errorf("sync truncated segment: %w", err)
			}
			return true, t.why, nil
		}
		if err != nil {
			return false, "", fmt.Errorf("read segment: %w", err)
		}
		g.count++
		g.size += n
	}
}

// readAck returns the acknowledged and the reserved sequence numbers stored
// in dir (0, 0 if none).
func readAck(dir string) (acked, reserved uint64, err error) {
	b, err := os.ReadFile(filepath.Join(dir, ackName))
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("read ack file: %w", err)
	}
	if len(b) != 20 || crc32.Checksum(b[:16], castagnoli) != binary.LittleEndian.Uint32(b[16:]) {
		return 0, 0, fmt.Errorf("%w: bad ack file", ErrCorrupt)
	}
	return binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:]), nil
}

// writeAck replaces the ack file atomically.
func writeAck(dir string, acked, reserved uint64) error {
	b := binary.LittleEndian.AppendUint64(nil, acked)
	b = binary.LittleEndian.AppendUint64(b, reserved)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	return atomicfile.Write(filepath.Join(dir, ackName), ackTemp, b, fsync)
}

// syncDir flushes dir's entries (file creation, rename, removal).
func syncDir(dir string) error { return atomicfile.SyncDir(dir, fsync) }

// fsync flushes a file or directory to stable storage. Tests that only check
// logic (the fuzzer) replace it.
var fsync = func(f *os.File) error { return f.Sync() }
