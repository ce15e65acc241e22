package main

import "syscall"

// statfs is the statfs of the file system dir (or its nearest existing
// parent) is on.
func statfs(dir string) (syscall.Statfs_t, error) {
	var st syscall.Statfs_t
	d, err := nearestDir(dir)
	if err != nil {
		return st, err
	}
	err = syscall.Statfs(d, &st)
	return st, err
}

// diskSize is the size in bytes of the file system dir (or its nearest
// existing parent) is on.
func diskSize(dir string) (int64, error) {
	st, err := statfs(dir)
	if err != nil {
		return 0, err
	}
	return int64(st.Blocks) * int64(st.Bsize), nil
}

// diskFree is the bytes available to unprivileged users on the file
// system dir (or its nearest existing parent) is on: what the capsule
// server's min_free_bytes guard compares.
func diskFree(dir string) (int64, error) {
	st, err := statfs(dir)
	if err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
