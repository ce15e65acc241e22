//go:build !linux

package main

import "errors"

// diskSize: the file system's size is read on Linux only.
func diskSize(string) (int64, error) { return 0, errors.New("not known on this OS") }

// diskFree: the file system's free space is read on Linux only.
func diskFree(string) (int64, error) { return 0, errors.New("not known on this OS") }
