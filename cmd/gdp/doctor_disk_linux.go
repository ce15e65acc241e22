package main

import "syscall"

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

// diskFree is the bytes available to unprivileged users on the file
// system dir (or its nearest existing parent) is on: what the capsule
// server's min_free_bytes guard compares.
func diskFree(dir string) (int64, error) {
	d, err := nearestDir(dir)
	if err != nil {
		return 0, err
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(d, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
