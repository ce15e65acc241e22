//go:build !unix

package main

import (
	"errors"
	"path/filepath"

	"github.com/gdpnet/gdpnet/pdu"
)

// errWriterLocked: another process on this machine writes the capsule.
var errWriterLocked = errors.New("another writer is active")

// writerLockPath is the lock file of capsule c (see writer_lock_unix.go).
func writerLockPath(keystore string, c pdu.Name) string {
	ks := filepath.Clean(keystore)
	return filepath.Join(filepath.Dir(ks), filepath.Base(ks)+".locks", c.String()+".lock")
}

// lockWriter takes no lock where flock is not available: the servers'
// refusal of a second writer (412) still holds.
func lockWriter(string, pdu.Name) (func(), error) { return func() {}, nil }
