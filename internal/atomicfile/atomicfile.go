// Package atomicfile replaces small state files (the spool's ack file, the
// dedup state) so that a crash leaves either the old content or the new,
// never a mix.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write replaces path with data: it writes tmp (a name in path's
// directory), flushes it, renames it over path and flushes the directory.
// sync flushes a file or a directory; nil is (*os.File).Sync. Tests that
// check only logic pass a cheaper one. On error, tmp is removed and path
// is left as it was.
func Write(path, tmp string, data []byte, sync func(*os.File) error) error {
	if sync == nil {
		sync = (*os.File).Sync
	}
	dir := filepath.Dir(path)
	tmpPath := filepath.Join(dir, tmp)
	f, err := os.OpenFile(tmpPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmpPath, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = sync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmpPath, path)
	}
	if err != nil {
		os.Remove(tmpPath)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return SyncDir(dir, sync)
}

// SyncDir flushes dir's entries (a creation, rename or removal in it).
// sync is as for Write.
func SyncDir(dir string, sync func(*os.File) error) error {
	if sync == nil {
		sync = (*os.File).Sync
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := sync(d); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
