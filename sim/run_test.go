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
	res, err := Run(ctx, top, Options{Out: out, Progress: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.Text())
	if want := "Results: 0% dropped (20/20 received)"; res.Summary != want {
		t.Fatalf("summary %q, want %q", res.Summary, want)
	}
	for _, f := range []string{"results.json", "samples.csv", "links.csv", "events.csv", "summary.txt"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Fatalf("%s missing or empty: %v", f, err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(out, "samples.csv"))
	if n := strings.Count(string(b), "\n"); n != 21 {
		t.Fatalf("samples.csv has %d lines, want a header and 20 pings", n)
	}
}
