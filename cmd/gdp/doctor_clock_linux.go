//go:build linux

package main

import "golang.org/x/sys/unix"

// clockSynced asks the kernel (adjtimex) whether NTP keeps the clock in
// sync: STA_UNSYNC is set while no time daemon disciplines it.
func clockSynced() (synced bool, err error) {
	var tx unix.Timex
	if _, err := unix.Adjtimex(&tx); err != nil {
		return false, err
	}
	return tx.Status&unix.STA_UNSYNC == 0, nil
}
