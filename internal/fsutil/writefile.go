package fsutil

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteFile writes data to path atomically and durably: a temporary file in
// the same directory gets mode, data and an fsync, then takes path's place
// and the directory is fsynced, so after a crash path holds either its old
// content or all of data.
//
// With overwrite the temporary file is renamed over path. Without it, it is
// hard-linked to path, which fails with an error matching fs.ErrExist
// (errors.Is) if path exists, with no window for a race between checking
// and writing.
func WriteFile(path string, data []byte, mode os.FileMode, overwrite bool) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	// After a rename tmp is gone and this fails harmlessly; after a link it
	// drops the temporary name, leaving path.
	defer os.Remove(tmp)
	if err := writeSyncClose(f, data, mode); err != nil {
		return err
	}
	if overwrite {
		err = os.Rename(tmp, path)
	} else {
		err = os.Link(tmp, path)
	}
	if err != nil {
		return err
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("sync directory of %s: %w", path, err)
	}
	return nil
}

// writeSyncClose sets f's mode (exactly, whatever the umask), writes data,
// fsyncs and closes f.
func writeSyncClose(f *os.File, data []byte, mode os.FileMode) error {
	err := f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir fsyncs a directory, making a rename or link in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
