package capsuled_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/client"
)

// TestReadAheadSequentialREADs: a reader asking for a capsule one record
// per READ, the way a file reader asks for chunks, is answered from the
// server's read-ahead (gdp_capsuled_readahead_hits_total) with the same
// records and proofs it verifies under the writer's heartbeat; after the
// replica restarts (nothing read ahead survives) and more records are
// appended, it reads on, every record checked.
func TestReadAheadSequentialREADs(t *testing.T) {
	w := newWorld(t)
	r1 := w.router("r1")
	rep := w.newReplica(r1, "read-ahead replica")
	writer := w.user(r1, "writer")
	tc := newTestCapsule(t, "read-ahead")
	tc.create(t, writer, 1, rep)
	name := tc.meta.Name()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	wr, err := writer.NewWriter(ctx, name, tc.writer.Key, client.WriterOptions{Cadence: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close(context.Background())
	var ack acked
	writeN(t, wr, 1, 60, &ack)
	reader := w.user(r1, "sequential reader")
	readSeq := func(from, to uint64) {
		t.Helper()
		rd, err := reader.NewReader(ctx, name, client.ReaderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i := from; i <= to; i++ {
			recs, err := rd.Read(ctx, i, i)
			if err != nil {
				t.Fatalf("read %d: %v", i, err)
			}
			if len(recs) != 1 || recs[0].Seqno != i || !bytes.Equal(recs[0].Data, payload(i)) {
				t.Fatalf("read %d: %d records, not the one written", i, len(recs))
			}
		}
	}
	readSeq(1, 40)
	hits := rep.metric("gdp_capsuled_readahead_hits_total", "")
	if hits < 30 || rep.metric("gdp_capsuled_readahead_fills_total", "") < 1 {
		t.Fatalf("40 one-record READs: %v answered from read-ahead, %v fills", hits, rep.metric("gdp_capsuled_readahead_fills_total", ""))
	}
	rep.stop()
	w.start(r1, rep)
	writeN(t, wr, 61, 100, &ack)
	readSeq(41, 100)
	if hits := rep.metric("gdp_capsuled_readahead_hits_total", ""); hits < 40 {
		t.Fatalf("after the restart: %v READs answered from read-ahead", hits)
	}
}
