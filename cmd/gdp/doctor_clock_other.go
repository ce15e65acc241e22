//go:build !linux

package main

import "errors"

// clockSynced: the synchronisation state is read on Linux only.
func clockSynced() (bool, error) { return false, errors.New("not known on this OS") }
