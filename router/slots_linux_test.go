//go:build linux

package router

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// vma finds the mapping of /proc/self/smaps that holds addr: its bounds
// (zero if none), and whether the kernel may back it with transparent huge
// pages.
func vma(t *testing.T, addr uintptr) (bounds [2]uintptr, thp bool) {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no smaps: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x ", &lo, &hi); n == 2 && strings.Contains(line, "-") && !strings.HasSuffix(strings.Fields(line)[0], ":") {
			if in {
				return bounds, false // no THPeligible line in the mapping
			}
			if in = addr >= lo && addr < hi; in {
				bounds = [2]uintptr{lo, hi}
			}
			continue
		}
		if in && strings.HasPrefix(line, "THPeligible:") {
			return bounds, strings.TrimSpace(strings.TrimPrefix(line, "THPeligible:")) == "1"
		}
	}
	return bounds, false
}

// TestDedupTableHugePages: the default dedup table (8 MiB) is a mapping the
// kernel may back with transparent huge pages (it is madvised and 2 MiB
// aligned), and the mapping goes away once the table is unreachable.
func TestDedupTableHugePages(t *testing.T) {
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || strings.Contains(string(mode), "[never]") {
		t.Skipf("transparent huge pages off here (%q, %v)", mode, err)
	}
	d := newDedup(1<<20, 10)
	addr := uintptr(unsafe.Pointer(&d.slots[0]))
	if addr%hugePage != 0 {
		t.Errorf("table at %#x is not 2 MiB aligned", addr)
	}
	mapping, thp := vma(t, addr)
	if mapping == ([2]uintptr{}) {
		t.Fatal("the table is in no mapping of smaps")
	}
	if !thp {
		t.Error("the table's mapping is not eligible for transparent huge pages")
	}
	// It still works as a dedup table.
	p := make([]byte, 64)
	p[2], p[8] = 1, 7
	if d.seen(p, 1) || !d.seen(p, 2) {
		t.Fatal("the huge-page table does not remember a PDU")
	}
	d = nil
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		if now, _ := vma(t, addr); now != mapping {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the table's mapping was never unmapped after the table became unreachable")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
