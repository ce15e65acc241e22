package client

import (
	"testing"
	"time"
)

func TestRTTEstimator(t *testing.T) {
	var e rttEstimator
	if got := e.rto(2 * time.Second); got != 2*time.Second {
		t.Fatalf("rto before any sample %v, want the bound", got)
	}
	var nilE *rttEstimator
	if got := nilE.rto(time.Second); got != time.Second {
		t.Fatalf("nil estimator rto %v", got)
	}
	// First sample: srtt = R, rttvar = R/2, rto = 3R.
	e.sample(100 * time.Millisecond)
	if got := e.rto(2 * time.Second); got != 300*time.Millisecond {
		t.Fatalf("rto after one 100 ms sample %v, want 300ms", got)
	}
	// Steady samples: rttvar decays, rto approaches srtt.
	for range 50 {
		e.sample(100 * time.Millisecond)
	}
	if got := e.rto(2 * time.Second); got < 100*time.Millisecond || got > 110*time.Millisecond {
		t.Fatalf("rto after steady 100 ms samples %v", got)
	}
	// A slow spell raises it, within the bound.
	for range 3 {
		e.sample(1500 * time.Millisecond)
	}
	if got := e.rto(2 * time.Second); got != 2*time.Second {
		t.Fatalf("rto after slow samples %v, want the 2s bound", got)
	}
	// Fast answers: never below minRTO.
	var f rttEstimator
	for range 50 {
		f.sample(time.Millisecond)
	}
	if got := f.rto(time.Second); got != minRTO {
		t.Fatalf("rto for 1 ms answers %v, want %v", got, minRTO)
	}
	f.sample(0) // ignored
	if f.samples != 50 {
		t.Fatal("a zero sample counted")
	}
}
