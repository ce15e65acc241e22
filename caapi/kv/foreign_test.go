package kv

import (
	"context"
	"fmt"
	"testing"
)

// TestForeignRecordsAtTheTail (Session 20): records that are not KV
// records, appended with the writer key after the newest checkpoint (a
// files-capsule record, a plain one), are skipped: a reader still starts
// from the checkpoint (not the whole log) and reads every key, counting
// them in Dropped. Mutant: store.go loadCheckpoint breaking at the first
// foreign record (the old code): the reader reads the log from record 1.
func TestForeignRecordsAtTheTail(t *testing.T) {
	ctx := context.Background()
	m := newMemLog(t)
	w := newWriter(m, NewIndex(m.info), WriterOptions{CheckpointEvery: -1})
	for i := range 20 {
		if _, err := w.Put(ctx, fmt.Sprintf("k%d", i%5), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Put(ctx, "k0", []byte("after")); err != nil {
		t.Fatal(err)
	}
	// 70 foreign records: more than one page of the look-back.
	for i := range 70 {
		data := []byte(fmt.Sprintf("plain record %d", i))
		if i%2 == 0 {
			data = append([]byte("gfs1C\x00\x00\x00\x00\x00\x00\x00\x00"), data...) // a files chunk
		}
		if _, err := m.AppendRecord(ctx, data); err != nil {
			t.Fatal(err)
		}
	}
	m.flush()
	st, err := openSource(ctx, &memSource{t: t, m: m, max: 1 << 20}, Options{NoFollow: true})
	if err != nil {
		t.Fatal(err)
	}
	if b := st.ix.Base(); b != 20 {
		t.Fatalf("started at base %d, want the checkpoint's 20", b)
	}
	if d := st.ix.Dropped(); d != 70 {
		t.Fatalf("dropped %d, want the 70 foreign records", d)
	}
	for k, want := range map[string]string{"k0": "after", "k1": "16", "k4": "19"} {
		if v, err := st.ix.GetAt(k, Latest); err != nil || string(v.Value) != want {
			t.Fatalf("%s: %q, %v; want %q", k, v.Value, err, want)
		}
	}
}
