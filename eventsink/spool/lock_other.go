//go:build !unix

package spool

import (
	"fmt"
	"os"
)

// lockDir opens dir's lock file. There is no inter-process lock on this
// platform.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	return f, nil
}
