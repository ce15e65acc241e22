package client

import (
	"testing"

	"github.com/gdpnet/gdpnet/capsuled/wire"
)

func TestBatchRecords(t *testing.T) {
	// Default: (wire.Budget - 2048) bytes, each 100-byte record costing 260.
	if got, want := BatchRecords(WriterOptions{}, 100), (wire.Budget-2048)/260; got != want {
		t.Fatalf("default batch of 100-byte records: %d, want %d", got, want)
	}
	if got := BatchRecords(WriterOptions{MaxBatchRecords: 10}, 100); got != 10 {
		t.Fatalf("MaxBatchRecords 10: %d", got)
	}
	// A record larger than the budget still goes, alone.
	if got := BatchRecords(WriterOptions{MaxBatchBytes: 100}, 1000); got != 1 {
		t.Fatalf("oversized record: batch of %d", got)
	}
	// The rule Append applies: full exactly when BatchRecords says.
	o := WriterOptions{}.withBatchDefaults()
	n := BatchRecords(o, 100)
	if o.batchFull(n-1, (n-1)*recordCost(100), recordCost(100)) || !o.batchFull(n, n*recordCost(100), recordCost(100)) {
		t.Fatal("batchFull and BatchRecords disagree")
	}
}
