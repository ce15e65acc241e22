package main

import (
	"syscall"

	"github.com/gdpnet/gdpnet/capsuled/store"
)

// diskSize is the size in bytes of the file system dir (or its nearest
// existing parent) is on.
func diskSize(dir string) (int64, error) {
	d, err := nearestDir(dir)
	if err != nil {
		return 0, err
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(d, &st); err != nil {
		return 0, err
	}
	return int64(st.Blocks) * int64(st.Bsize), nil
}

// diskFree is the free space on the file system dir (or its nearest
// existing parent) is on, as the capsule server's min_free_bytes guard
// reads it (store.FreeBytes).
func diskFree(dir string) (int64, error) {
	d, err := nearestDir(dir)
	if err != nil {
		return 0, err
	}
	free, err := store.FreeBytes(d)
	return int64(free), err
}
