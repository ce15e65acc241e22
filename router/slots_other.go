//go:build !linux

package router

import "sync/atomic"

// newSlots returns n zeroed slots (on Linux a huge-page mapping).
func newSlots(n int, _ *dedup) []atomic.Uint64 { return make([]atomic.Uint64, n) }
