//go:build linux

package router

import (
	"runtime"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugePage is the transparent huge page size the table is aligned to.
const hugePage = 2 << 20

// newSlots returns n zeroed slots. A table of at least a huge page is an
// anonymous mapping aligned to 2 MiB and marked MADV_HUGEPAGE, so the
// kernel backs it with huge pages where it can: every PDU touches one
// random slot, and with 4 KiB pages each touch of the 8 MiB default table
// is a TLB miss as well as a cache miss (in a VM a nested page walk;
// measured 130-240 ns a lookup against 30-80 ns with huge pages). The
// mapping is unmapped when owner becomes unreachable. Smaller tables, and
// any mmap failure, use the Go heap.
func newSlots(n int, owner *dedup) []atomic.Uint64 {
	size := n * 8
	if size < hugePage {
		return make([]atomic.Uint64, n)
	}
	m, err := unix.Mmap(-1, 0, size+hugePage, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return make([]atomic.Uint64, n)
	}
	off := (hugePage - int(uintptr(unsafe.Pointer(&m[0]))%hugePage)) % hugePage
	table := m[off : off+size]
	// Best effort: without THP (disabled, or not compiled in) the table
	// still works on small pages.
	_ = unix.Madvise(table, unix.MADV_HUGEPAGE)
	runtime.AddCleanup(owner, func(m []byte) { _ = unix.Munmap(m) }, m)
	return unsafe.Slice((*atomic.Uint64)(unsafe.Pointer(&table[0])), n)
}
