package sim

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunLinear: a built-in runs end to end in-process; every ping is
// answered and the results say so in one line.
func TestRunLinear(t *testing.T) {
	top, err := Builtin("linear", Params{N: 4, Delay: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out := t.TempDir()
	res, err := Run(ctx, top, Options{Out: out, Progress: os.Stderr, Plots: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.Text())
	if want := "Results: 0% dropped (20/20 received)"; res.Summary != want {
		t.Fatalf("summary %q, want %q", res.Summary, want)
	}
	for _, f := range []string{"results.json", "samples.csv", "links.csv", "events.csv", "summary.txt", "latency-cdf.png", "latency-cdf.svg"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Fatalf("%s missing or empty: %v", f, err)
		}
	}
	if png, _ := os.ReadFile(filepath.Join(out, "latency-cdf.png")); !strings.HasPrefix(string(png), "\x89PNG") {
		t.Fatalf("latency-cdf.png is no PNG")
	}
	b, _ := os.ReadFile(filepath.Join(out, "samples.csv"))
	if n := strings.Count(string(b), "\n"); n != 21 {
		t.Fatalf("samples.csv has %d lines, want a header and 20 pings", n)
	}
}

// TestFailures: a partition cuts the pings off until it heals, a crashed
// router takes its client's name with it until it restarts; each outage
// is measured and ends; the events are recorded.
func TestFailures(t *testing.T) {
	top, err := Builtin("linear", Params{N: 3, Delay: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	top.Workloads[0].Count, top.Workloads[0].Interval = 120, 50*time.Millisecond // 6 s
	top.At(1*time.Second, Failure{Kind: FailPartition, Groups: [][]string{{"r1", "c1"}, {"r2", "r3", "c2"}}})
	top.At(2*time.Second, Failure{Kind: FailHeal})
	top.At(3500*time.Millisecond, Failure{Kind: FailCrash, Node: "r3"})
	top.At(4*time.Second, Failure{Kind: FailRestart, Node: "r3"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := Run(ctx, top, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.Text())
	p := res.Workloads[0]
	if len(res.Events) != 4 {
		t.Fatalf("events %v", res.Events)
	}
	for _, e := range res.Events {
		if e.Err != "" {
			t.Fatalf("event failed: %+v", e)
		}
	}
	// Two outages: the partition (1–2 s) and the crash (3.5 s to after
	// the restart), both over before the end.
	var inPart, inCrash bool
	for _, o := range p.Outages {
		if o.End == 0 {
			t.Fatalf("an outage from %.2fs never ended", o.Start)
		}
		if o.Start >= 0.95 && o.Start < 1.2 && o.End >= 2 {
			inPart = true
		}
		if o.Start >= 3.45 && o.Start < 3.7 && o.End >= 4 {
			inCrash = true
		}
	}
	if !inPart || !inCrash {
		t.Fatalf("outages %+v: want one from the partition (1–2 s) and one from the crash (3.5–4 s+)", p.Outages)
	}
	// No loss outside the outages' windows.
	for _, s := range p.Samples {
		if !s.OK && (s.T < 0.95 || (s.T > 2.5 && s.T < 3.45)) {
			t.Fatalf("ping at %.2fs lost outside a failure", s.T)
		}
	}
}
