//go:build !linux

package main

import "errors"

// probeOffload: UDP GSO/GRO are used on Linux only.
func probeOffload() (gso, gro bool, err error) {
	return false, false, errors.New("UDP GSO/GRO are used on Linux only")
}
