// Package vfsutil holds the durable file-system steps the capsule server
// takes on pebble's vfs.FS: the operating system's file system in
// production, a strict in-memory one (vfs.NewStrictMem) in the tests that
// cut the power and keep only what was fsynced.
package vfsutil

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/vfs"
)

// MkdirAll creates dir and any missing parents and fsyncs the directory
// above each one it created: a new directory entry is durable only once
// its parent is synced, and a directory lost in a power cut takes every
// acknowledged write in it along. fs nil is vfs.Default.
func MkdirAll(fs vfs.FS, dir string, perm os.FileMode) error {
	if fs == nil {
		fs = vfs.Default
	}
	dir = filepath.Clean(dir)
	top := dir // the nearest ancestor (or dir itself) that exists already
	for {
		if _, err := fs.Stat(top); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		up := filepath.Dir(top)
		if up == top {
			break
		}
		top = up
	}
	if top == dir {
		return nil
	}
	if err := fs.MkdirAll(dir, perm); err != nil {
		return err
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		if err := SyncDir(fs, d); err != nil {
			return err
		}
		if d == top {
			return nil
		}
	}
}

// SyncDir fsyncs a directory, making the entries created or renamed in it
// durable.
func SyncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// ReadFile reads the whole file at path.
func ReadFile(fs vfs.FS, path string) ([]byte, error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// WriteFile writes data to path atomically and durably: the temporary file
// tmp (in path's directory; the caller makes the name unique) gets data
// and an fsync, is renamed over path, and the directory is fsynced. After
// a crash path holds its old content or all of data.
func WriteFile(fs vfs.FS, tmp, path string, data []byte) error {
	f, err := fs.Create(tmp)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fs.Rename(tmp, path)
	}
	if err != nil {
		_ = fs.Remove(tmp)
		return err
	}
	return SyncDir(fs, filepath.Dir(path))
}
