package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSoakStoreMemory (GDP_SOAK=1; `make soak-memory`) writes records into
// a store with the default engine settings until pebble has been through
// several 64 MiB memtables, sampling the process's resident memory outside
// the Go runtime (RssAnon less what Go holds) and Store.Memory. It is the
// life soak's capsule-server growth (OPERATIONS §6.11, Session 21) at full
// speed: the memory outside Go grows with the records written until the
// first 64 MiB memtables have been filled, then stays flat — a warm-up of
// pebble's memtables, not a leak. Samples go to GDP_SOAK_OUT/store-memory.csv.
func TestSoakStoreMemory(t *testing.T) {
	if os.Getenv("GDP_SOAK") != "1" {
		t.Skip("a soak: GDP_SOAK=1 (make soak-memory)")
	}
	mib := 400
	if v, err := strconv.Atoi(os.Getenv("GDP_SOAK_STORE_MIB")); err == nil && v > 0 {
		mib = v
	}
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tc := newTestCapsule(t, 61)
	if err := s.Create(ctx, tc.name, tc.meta); err != nil {
		t.Fatal(err)
	}
	w := tc.writer()
	const size, batch = 1024, 256
	type sample struct {
		written        int // MiB of record data
		outside, goRes float64
		m              Memory
		at             time.Duration
	}
	var samples []sample
	start := time.Now()
	take := func(written int) {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		goRes := float64(ms.Sys-ms.HeapReleased) / (1 << 20)
		samples = append(samples, sample{written: written, outside: float64(rssAnonKiB())/1024 - goRes, goRes: goRes, m: s.Memory(), at: time.Since(start)})
	}
	take(0)
	for done := 0; done < mib<<20; {
		recs, hb := writeRecs(w, batch, size)
		mustAppend(t, s, tc.name, recs, hb)
		done += batch * size
		if done%(8<<20) == 0 {
			take(done >> 20)
		}
	}
	var b strings.Builder
	b.WriteString("data_mib,seconds,outside_go_mib,go_resident_mib,memtable_mib,unflushed_mib,block_cache_mib\n")
	for _, x := range samples {
		fmt.Fprintf(&b, "%d,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f\n", x.written, x.at.Seconds(), x.outside, x.goRes,
			float64(x.m.MemTables)/(1<<20), float64(x.m.Unflushed)/(1<<20), float64(x.m.BlockCache)/(1<<20))
	}
	t.Logf("\n%s", b.String())
	// Flat once warmed: over the second half of the data the memory
	// outside Go may not rise above what it reached in the quarter before
	// (+8 MiB), and never above four 64 MiB memtables and the block cache.
	var before, after float64
	for _, x := range samples {
		switch {
		case x.written >= mib/4 && x.written < mib/2:
			before = max(before, x.outside)
		case x.written >= mib/2:
			after = max(after, x.outside)
		}
	}
	t.Logf("memory outside Go: at most %.1f MiB over %d–%d MiB written, %.1f MiB over %d–%d MiB", before, mib/4, mib/2, after, mib/2, mib)
	if after > before+8 || after > 4*64+32+16 {
		t.Errorf("the memory outside Go kept growing: %.1f MiB over the second half of the records, %.1f MiB over the quarter before", after, before)
	}
	if out := os.Getenv("GDP_SOAK_OUT"); out != "" {
		if err := os.WriteFile(filepath.Join(out, "store-memory.csv"), []byte(b.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}

func rssAnonKiB() int {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "RssAnon:"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	return 0
}
