package kv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// model is the map-of-versions model of a KV capsule: every put and delete
// the test made, with the seqno and time the log gave it, and every
// record's time (for time → seqno).
type model struct {
	versions map[string][]modelVersion
	times    map[uint64]int64 // data records' times by seqno (holes absent)
	head     uint64
}

type modelVersion struct {
	seq  uint64
	val  []byte
	del  bool
	time int64
}

// at is the model's answer: the last version of key at or before seqno s.
func (m *model) at(key string, s uint64) (modelVersion, bool) {
	var got modelVersion
	ok := false
	for _, v := range m.versions[key] {
		if v.seq <= s {
			got, ok = v, true
		}
	}
	return got, ok && !got.del
}

// seqnoAt is the seqno of the newest data record written at or before t
// (0: none), scanning every record.
func (m *model) seqnoAt(t int64) uint64 {
	var s uint64
	for seq := uint64(1); seq <= m.head; seq++ {
		if rt, ok := m.times[seq]; ok && rt <= t {
			s = seq
		}
	}
	return s
}

// writeRandomLog runs random puts, deletes, clock steps, holes and
// checkpoints through a Writer over a memLog, recording the model.
func writeRandomLog(t *rapid.T, m *memLog) *model {
	ctx := context.Background()
	w := newWriter(m, NewIndex(m.info), WriterOptions{CheckpointEvery: rapid.IntRange(1, 12).Draw(t, "checkpointEvery")})
	md := &model{versions: map[string][]modelVersion{}, times: map[uint64]int64{}}
	keys := []string{"a", "ab", "abc", "b", "b/1", "b/2", "c"}
	n := rapid.IntRange(1, 80).Draw(t, "ops")
	for i := 0; i < n; i++ {
		switch rapid.IntRange(0, 9).Draw(t, "op") {
		case 0, 1, 2, 3:
			k := rapid.SampledFrom(keys).Draw(t, "key")
			v := rapid.SliceOfN(rapid.Byte(), 0, 8).Draw(t, "value")
			s, err := w.Put(ctx, k, v)
			if err != nil {
				t.Fatal(err)
			}
			md.versions[k] = append(md.versions[k], modelVersion{seq: s, val: v, time: m.entries[s-1].Time})
		case 4, 5:
			k := rapid.SampledFrom(keys).Draw(t, "key")
			s, err := w.Delete(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			if s != 0 {
				md.versions[k] = append(md.versions[k], modelVersion{seq: s, del: true, time: m.entries[s-1].Time})
			}
		case 6, 7:
			// Time moves on (or not: equal times are allowed).
			m.clock += int64(rapid.IntRange(0, 3).Draw(t, "tick")) * int64(time.Millisecond)
		case 8:
			if err := w.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
		case 9:
			m.hole()
		}
	}
	m.flush()
	md.head = m.Seqno()
	for _, e := range m.entries {
		if !e.Hole {
			md.times[e.Seqno] = e.Time
		}
	}
	return md
}

// checkAgainstModel compares every point of the log (by seqno and by time)
// and every key, prefix and history with the model.
func checkAgainstModel(t *rapid.T, md *model, m *memLog, get func(string, At) (Value, error),
	list func(string, At) ([]Value, error), history func(string) ([]Value, error)) {
	keys := []string{"a", "ab", "abc", "b", "b/1", "b/2", "c", "zz"}
	points := []uint64{md.head}
	for i := 0; i < 6; i++ {
		points = append(points, rapid.Uint64Range(0, md.head).Draw(t, "seqno"))
	}
	for _, s := range points {
		for _, k := range keys {
			want, ok := md.at(k, s)
			at := AtSeqno(s)
			if s == 0 {
				at = Latest // seqno 0 is not a point; the head is
				want, ok = md.at(k, md.head)
			}
			got, err := get(k, at)
			switch {
			case !ok && !errors.Is(err, ErrNotFound):
				t.Fatalf("get %q at %d: got %v, %v; want not found", k, s, got, err)
			case ok && (err != nil || !bytes.Equal(got.Value, want.val) || got.Seqno != want.seq || got.Time.UnixNano() != want.time):
				t.Fatalf("get %q at %d: got %q (seqno %d), %v; want %q (seqno %d)", k, s, got.Value, got.Seqno, err, want.val, want.seq)
			}
		}
		at, ms := AtSeqno(s), s
		if s == 0 {
			at, ms = Latest, md.head
		}
		for _, prefix := range []string{"", "a", "ab", "b/", "x"} {
			got, err := list(prefix, at)
			if err != nil {
				t.Fatalf("list %q at %d: %v", prefix, s, err)
			}
			var wantKeys, want []string
			for k := range md.versions {
				if _, ok := md.at(k, ms); ok && strings.HasPrefix(k, prefix) {
					wantKeys = append(wantKeys, k)
				}
			}
			sort.Strings(wantKeys)
			for _, k := range wantKeys {
				v, _ := md.at(k, ms)
				want = append(want, fmt.Sprintf("%s=%x", k, v.val))
			}
			var gotS []string
			for _, v := range got {
				gotS = append(gotS, fmt.Sprintf("%s=%x", v.Key, v.Value))
			}
			if strings.Join(gotS, ",") != strings.Join(want, ",") {
				t.Fatalf("list %q at %d: got %v, want %v", prefix, s, gotS, want)
			}
		}
	}
	// By time: every record's time, the instants just before and after.
	var ts []int64
	for _, rt := range md.times {
		ts = append(ts, rt-1, rt, rt+1)
	}
	for _, tt := range ts {
		s := md.seqnoAt(tt)
		for _, k := range keys {
			want, ok := md.at(k, s)
			got, err := get(k, AtTime(time.Unix(0, tt)))
			switch {
			case !ok && !errors.Is(err, ErrNotFound):
				t.Fatalf("get %q at time %d (seqno %d): got %q, %v; want not found", k, tt, s, got.Value, err)
			case ok && (err != nil || !bytes.Equal(got.Value, want.val) || got.Seqno != want.seq):
				t.Fatalf("get %q at time %d (seqno %d): got %q (seqno %d), %v; want %q (seqno %d)", k, tt, s, got.Value, got.Seqno, err, want.val, want.seq)
			}
		}
	}
	for _, k := range keys {
		h, err := history(k)
		if err != nil {
			t.Fatalf("history %q: %v", k, err)
		}
		want := md.versions[k]
		if len(h) != len(want) {
			t.Fatalf("history %q: %d versions, want %d", k, len(h), len(want))
		}
		for i := range h {
			if h[i].Seqno != want[i].seq || h[i].Deleted != want[i].del || !bytes.Equal(h[i].Value, want[i].val) {
				t.Fatalf("history %q version %d: got seqno %d del %t %q, want seqno %d del %t %q", k, i,
					h[i].Seqno, h[i].Deleted, h[i].Value, want[i].seq, want[i].del, want[i].val)
			}
		}
	}
}

// TestTimeTravelMatchesModel: a reader that replays the whole log in pages
// of random sizes, and a reader that starts from the newest checkpoint and
// reads the older log only when asked for an earlier point, both answer
// every get, get-as-of (seqno and time), list and history exactly as the
// map-of-versions model does.
func TestTimeTravelMatchesModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		m := newMemLog(t)
		md := writeRandomLog(rt, m)
		ctx := context.Background()

		// Full replay, pages of random sizes through ApplyPage.
		full := NewIndex(m.info)
		for from := uint64(1); from <= md.head; {
			to := min(md.head, from+rapid.Uint64Range(0, 9).Draw(rt, "page")) // pages of 1..10
			if err := full.ApplyPage(m.page(t, from, to)); err != nil {
				rt.Fatalf("apply [%d, %d]: %v", from, to, err)
			}
			from = to + 1
		}
		checkAgainstModel(rt, md, m, full.GetAt, full.ListAt, func(k string) ([]Value, error) { return full.History(k), nil })

		// From the newest checkpoint, older log on demand.
		src := &memSource{t: t, m: m, max: rapid.Uint64Range(1, 16).Draw(rt, "perPage")}
		st, err := openSource(ctx, src, Options{NoFollow: true})
		if err != nil {
			rt.Fatalf("open: %v", err)
		}
		if ck := full.Checkpoint(); st.ix.Base() == 0 && ck != 0 {
			rt.Fatalf("store started from seqno 1 though checkpoint %d exists", ck)
		}
		get := func(k string, at At) (Value, error) { return st.GetAt(ctx, k, at) }
		list := func(p string, at At) ([]Value, error) { return st.ListAt(ctx, p, at) }
		hist := func(k string) ([]Value, error) { return st.History(ctx, k) }
		checkAgainstModel(rt, md, m, get, list, hist)
	})
}

// TestOpenReadsFromCheckpoint: a new reader of a long log with checkpoints
// reads the checkpoint and the records after it, not the whole log.
func TestOpenReadsFromCheckpoint(t *testing.T) {
	ctx := context.Background()
	m := newMemLog(t)
	w := newWriter(m, NewIndex(m.info), WriterOptions{CheckpointEvery: 100})
	for i := 0; i < 2000; i++ {
		if _, err := w.Put(ctx, fmt.Sprintf("k%03d", i%50), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	m.flush()
	src := &memSource{t: t, m: m, max: 1 << 20}
	st, err := openSource(ctx, src, Options{NoFollow: true})
	if err != nil {
		t.Fatal(err)
	}
	base, head := st.ix.Base(), st.ix.Head()
	if base == 0 || head-base > 200 {
		t.Fatalf("started at base %d, head %d: want a checkpoint within the last 200 records", base, head)
	}
	v, err := st.Get(ctx, "k049")
	if err != nil || string(v.Value) != "1999" {
		t.Fatalf("get: %q, %v", v.Value, err)
	}
	// An early point reads the older log once.
	v, err = st.GetAt(ctx, "k000", AtSeqno(1))
	if err != nil || string(v.Value) != "0" {
		t.Fatalf("get at 1: %q, %v", v.Value, err)
	}
	if st.ix.Base() != 0 {
		t.Fatalf("base %d after backfill", st.ix.Base())
	}
}
