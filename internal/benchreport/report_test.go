package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testdata/forward.json is real `go test -bench -json` output of this
// repository (router BenchmarkForward at 20000x, tunnel RawVsBareUDP at
// 2000x, pdu Decode and certs Ed25519Verify); fail.json and fail.txt are
// real output of a throwaway module whose benchmarks fail, skip and pass
// (the same run as -json and as plain text); plain.txt is plain output
// of pdu's benchmarks.

func parseFile(t *testing.T, name string) *Run {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	run, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func value(t *testing.T, run *Run, key, unit string) float64 {
	t.Helper()
	r := run.Result(key)
	if r == nil {
		t.Fatalf("no result for %s (have %d results)", key, len(run.Results))
	}
	v, ok := r.Value(unit)
	if !ok {
		t.Fatalf("%s reported no %s (units %v)", key, unit, r.Units())
	}
	return v
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b)) }

func TestParseRealJSON(t *testing.T) {
	run := parseFile(t, "forward.json")
	for _, c := range []struct {
		key, unit string
		want      float64
	}{
		{"router/BenchmarkForward/router-raw-200B", "pdus/s", 54007},
		{"router/BenchmarkForward/router-raw-200B", "x_bare", 0.07284},
		{"router/BenchmarkForward/gso-relay-200B", "pdus/s", 741467},
		{"router/BenchmarkForward/gso-relay-1300B", "MB/s", 401.07}, // a result line split over two output events
		{"router/BenchmarkForward/router-raw-half-200B", "p50-µs", 4144},
		{"router/BenchmarkForward/router-raw-half-200B", "p99-µs", 190570},
		{"router/BenchmarkForward/router-raw-half-200B", "ns/op", 40094},
		// "bare-200": the -2 suffix is GOMAXPROCS, the -200 is the name.
		{"tunnel/BenchmarkRawVsBareUDP/bare-200", "pdus/s", 117155},
		{"tunnel/BenchmarkRawVsBareUDP/raw-1300", "loss%", 0},
		{"pdu/BenchmarkDecode", "PDUs/s", 103466115},
		{"certs/BenchmarkEd25519Verify", "verifies/s", 4396},
	} {
		if got := value(t, run, c.key, c.unit); !near(got, c.want) {
			t.Errorf("%s %s = %v, want %v", c.key, c.unit, got, c.want)
		}
	}
	if len(run.Results) != 16 {
		t.Errorf("%d results, want 16 (10 forward, 4 tunnel, 2 others)", len(run.Results))
	}
	if len(run.Malformed) != 0 || len(run.Outcomes) != 0 || len(run.PkgFailed) != 0 {
		t.Errorf("malformed %v, outcomes %v, failed packages %v: want none", run.Malformed, run.Outcomes, run.PkgFailed)
	}
	if run.CPU != "Oxide Virtual Turin-like Processor" {
		t.Errorf("cpu %q", run.CPU)
	}
	if want := []string{"router", "tunnel", "pdu", "certs"}; strings.Join(run.Packages, ",") != strings.Join(want, ",") {
		t.Errorf("packages %v, want %v", run.Packages, want)
	}
	if run.Start.IsZero() || !run.End.After(run.Start) {
		t.Errorf("run from %v to %v", run.Start, run.End)
	}
}

func rowFor(t *testing.T, rows []Row, figure string) Row {
	t.Helper()
	for _, r := range rows {
		if r.Figure == figure {
			return r
		}
	}
	t.Fatalf("no row %q", figure)
	return Row{}
}

func TestEvaluateRealRun(t *testing.T) {
	run := parseFile(t, "forward.json")
	targets, err := ParseTargets(targetsYAML)
	if err != nil {
		t.Fatal(err)
	}
	rows := Evaluate(run, targets)
	if len(rows) != len(targets) {
		t.Fatalf("%d rows for %d targets: every target must have a row", len(rows), len(targets))
	}
	for i := range rows {
		if rows[i].Figure != targets[i].Figure {
			t.Fatalf("row %d is %q, want %q (the targets' order)", i, rows[i].Figure, targets[i].Figure)
		}
	}

	// The tool's ratio agrees with the one the benchmark computed itself.
	gso := rowFor(t, rows, "forwarding 200 B vs GSO/GRO relay")
	if !gso.HasR || math.Abs(gso.Ratio-0.07284) > 1e-4 || gso.Base != 741467 || gso.Value != 54007 {
		t.Errorf("200 B vs GSO: value %v base %v ratio %v, want 54007 / 741467 = 0.07284", gso.Value, gso.Base, gso.Ratio)
	}
	if gso.Status != NotMet {
		t.Errorf("200 B vs GSO at 0.073 (target ≥ 0.2): %s, want %s", gso.Status, NotMet)
	}
	relay := rowFor(t, rows, "forwarding 1,300 B vs unbatched relay")
	if math.Abs(relay.Ratio-1.816) > 1e-3 || relay.Status != Met {
		t.Errorf("1,300 B vs relay: ratio %v %s, want 1.816 met", relay.Ratio, relay.Status)
	}
	if r := rowFor(t, rows, "forwarding 200 B vs unbatched relay"); r.Status != NotMet {
		t.Errorf("200 B vs relay at 0.857 (≥ 1): %s", r.Status)
	}
	if r := rowFor(t, rows, "loss under overload 200 B"); r.Status != NoTarget || r.Value != 37.94 || r.HasR {
		t.Errorf("loss row: %+v", r)
	}
	for _, f := range []string{"catch-up after a restart", "replicated appends W=2 of 3 vs local store", "sealed vs plain appends"} {
		if r := rowFor(t, rows, f); r.Status != NotRun || r.HasValue {
			t.Errorf("%s: %s, want %s", f, r.Status, NotRun)
		}
	}
	if r := rowFor(t, rows, "raw tunnel 200 B vs bare UDP"); r.Status != NoTarget || math.Abs(r.Ratio-451726.0/117155) > 1e-9 {
		t.Errorf("raw tunnel row: %+v", r)
	}
}

const failTargets = `
- {figure: broken, bench: benchfail/BenchmarkBroken, metric: pdus/s, op: ">=", target: 1}
- {figure: needs root, bench: benchfail/BenchmarkNeedsRoot, metric: pdus/s, op: ">=", target: 1}
- {figure: fine, bench: benchfail/BenchmarkParent/ok-200, metric: pdus/s, op: ">=", target: 1000}
- {figure: too slow, bench: benchfail/BenchmarkParent/ok-200, metric: pdus/s, op: ">=", target: 2000}
- {figure: latency bound, bench: benchfail/BenchmarkParent/ok-200, metric: ns/op, op: "<=", target: 100000}
- {figure: bad sub, bench: benchfail/BenchmarkParent/bad, metric: pdus/s}
- {figure: never written, bench: benchfail/BenchmarkNothing, metric: pdus/s, op: ">=", target: 1}
- {figure: unit not reported, bench: benchfail/BenchmarkParent/ok-200, metric: loss%}
- {figure: later, bench: benchfail/BenchmarkLater, metric: ns/op}
- {figure: baseline failed, bench: benchfail/BenchmarkParent/ok-200, metric: pdus/s, baseline: benchfail/BenchmarkBroken, op: ">=", target: 0.5}
`

func TestFailedSkippedAndMissingRows(t *testing.T) {
	targets, err := ParseTargets([]byte(failTargets))
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"fail.json", "fail.txt"} {
		t.Run(file, func(t *testing.T) {
			run := parseFile(t, file)
			want := map[string]string{
				"broken": Failed, "fine": Met, "too slow": NotMet, "latency bound": Met, "bad sub": Failed,
				"never written": NotRun, "unit not reported": NoMetric, "baseline failed": NoBaseline,
				"needs root": Skipped, "later": Failed,
			}
			if file == "fail.txt" {
				want["needs root"] = NotRun // plain text without -v does not print skips
			}
			rows := Evaluate(run, targets)
			if len(rows) != len(targets) {
				t.Fatalf("%d rows for %d targets", len(rows), len(targets))
			}
			for _, r := range rows {
				if r.Status != want[r.Figure] {
					t.Errorf("%s: %s (%s), want %s", r.Figure, r.Status, r.Why, want[r.Figure])
				}
			}
			if r := rowFor(t, rows, "broken"); !strings.Contains(r.Why, "the sink never answered") {
				t.Errorf("broken's reason %q lacks the benchmark's last log line", r.Why)
			}
			// Failed after its first run: reported as BenchmarkLater-2.
			if r := rowFor(t, rows, "later"); !strings.Contains(r.Why, "refused at b.N > 1") {
				t.Errorf("later's reason %q", r.Why)
			}
			if len(run.Malformed) != 0 {
				t.Errorf("malformed %q", run.Malformed)
			}
			if run.PkgFailed["benchfail"] == "" {
				t.Errorf("the package's failure is not recorded: %v", run.PkgFailed)
			}
			if file == "fail.json" && run.Tests["benchfail/TestIntact"] != "pass" {
				t.Errorf("tests %v", run.Tests)
			}
		})
	}
}

func TestMalformedLinesCounted(t *testing.T) {
	good, err := os.ReadFile("testdata/plain.txt")
	if err != nil {
		t.Fatal(err)
	}
	// Crafted damage around the real lines: a truncated result, a
	// non-numeric iteration count, a value without its unit, a value that
	// is not a number, and a broken JSON line.
	bad := []string{
		"BenchmarkCut-2   \t     100\t",
		"BenchmarkIters-2 \t   lots\t  12.8 ns/op",
		"BenchmarkOdd-2   \t     100\t  12.8 ns/op\t 5",
		"BenchmarkNaN-2   \t     100\t  twelve ns/op",
		`{"Action":"output","Output":`,
	}
	in := strings.Replace(string(good), "PASS\n", strings.Join(bad, "\n")+"\nPASS\n", 1)
	run, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Malformed) != 4 {
		t.Errorf("%d malformed lines, want 4 (the broken JSON line is plain text, not a result): %q", len(run.Malformed), run.Malformed)
	}
	if v := value(t, run, "pdu/BenchmarkNAK", "PDUs/s"); v != 591079 {
		t.Errorf("NAK %v", v)
	}
	if len(run.Results) != 2 {
		t.Errorf("%d results, want the 2 good ones", len(run.Results))
	}
	var out bytes.Buffer
	if err := WriteReport(&out, run, nil, Meta{Command: "make bench"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "4 benchmark result lines did not parse and were ignored") ||
		!strings.Contains(out.String(), "BenchmarkIters-2") {
		t.Errorf("the report does not show the malformed lines:\n%s", out.String())
	}
}

func TestMedianOfRepeatedRuns(t *testing.T) {
	in := "pkg: github.com/gdpnet/gdpnet/x\n" +
		"BenchmarkA-2 \t 10\t 5 ns/op\t 300 pdus/s\n" +
		"BenchmarkA-2 \t 10\t 5 ns/op\t 100 pdus/s\n" +
		"BenchmarkA-2 \t 10\t 5 ns/op\t 200 pdus/s\n"
	run, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if v := value(t, run, "x/BenchmarkA", "pdus/s"); v != 200 {
		t.Errorf("median %v, want 200", v)
	}
	run, err = Parse(strings.NewReader(in + "BenchmarkA-2 \t 10\t 5 ns/op\t 400 pdus/s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if v := value(t, run, "x/BenchmarkA", "pdus/s"); v != 250 {
		t.Errorf("median of 4 %v, want 250", v)
	}
	if n := len(run.Result("x/BenchmarkA").Iters); n != 4 {
		t.Errorf("%d samples, want 4", n)
	}
}

func TestParseTargetsRejects(t *testing.T) {
	for _, bad := range []string{
		`- {figure: a, bench: router/BenchmarkX, metric: u, op: "=>", target: 1}`,
		`- {figure: a, bench: router/BenchmarkX, op: ">=", target: 1}`,
		`- {figure: a, bench: BenchmarkX, metric: u}`,
		`- {figure: a, bench: router/BenchmarkX, metric: u, target: 1}`,
		`- {figure: a, bench: router/BenchmarkX, metric: u, of: ratio, op: ">=", target: 1}`,
		`- {figure: a, bench: router/BenchmarkX, metric: u, op: ">=", target: 0}`,
		`- {figure: a, bench: router/BenchmarkX, metric: u, of: both}`,
		`- {figure: a, bench: router/BenchmarkX, metric: u, baseline: relay, op: ">=", target: 1}`,
		`figure: not a list`,
	} {
		if _, err := ParseTargets([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
	ts, err := ParseTargets(targetsYAML)
	if err != nil {
		t.Fatalf("the built-in targets: %v", err)
	}
	seen := map[string]bool{}
	for _, tg := range ts {
		if seen[tg.Figure] {
			t.Errorf("figure %q twice", tg.Figure)
		}
		seen[tg.Figure] = true
	}
	for _, f := range []string{"forwarding 200 B vs GSO/GRO relay", "forwarding 1,300 B vs GSO/GRO relay",
		"replicated appends W=2 of 3 vs local store", "catch-up after a restart"} {
		if !seen[f] {
			t.Errorf("issue 16's target %q missing", f)
		}
	}
}

func TestScoreDirection(t *testing.T) {
	le := Row{Target: Target{Op: "<=", Bound: 1.15, Of: "value"}, Value: 0.5, HasValue: true}
	if s, _ := le.Score(); !near(s, 2.3) {
		t.Errorf("≤ 1.15 at 0.5: score %v, want 2.3", s)
	}
	ge := Row{Target: Target{Op: ">=", Bound: 0.2, Baseline: "x/BenchmarkB"}, Ratio: 0.1, HasR: true, Value: 7, HasValue: true}
	if s, _ := ge.Score(); !near(s, 0.5) {
		t.Errorf("≥ 0.2 at ratio 0.1: score %v, want 0.5 (on the ratio, not the value)", s)
	}
}

func TestLoadLog(t *testing.T) {
	in := "1765000010 9.50 7.00 6.00 3/900 1234\n" +
		"garbage\n" +
		"1765000000 5.00 4.00 3.00 1/800 1200\n" +
		"1765000020 12.25 8.00 6.50 4/910 1240\n"
	l, bad, err := ParseLoadLog(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if bad != 1 || len(l) != 3 || l[0].L1 != 5 || l[2].Running != 4 {
		t.Fatalf("samples %+v, %d bad", l, bad)
	}
	run := &Run{Load: l}
	for _, c := range []struct {
		at   int64
		want float64
	}{{1765000005, 5}, {1765000010, 9.5}, {1765000019, 9.5}, {1765000100, 12.25}, {1764999000, 5}} {
		if got, ok := run.LoadAt(time.Unix(c.at, 0)); !ok || got != c.want {
			t.Errorf("load at %d = %v, want %v", c.at, got, c.want)
		}
	}
}

// TestCommand runs the tool end to end on the real samples: the report
// and plots are written, every target has its line, and a run with a
// failed benchmark still gets its report but exits 1.
func TestCommand(t *testing.T) {
	targets, _ := ParseTargets(targetsYAML)
	dir := t.TempDir()
	var stderr bytes.Buffer
	if rc := run([]string{"-in", "testdata/forward.json", "-out", dir, "-filter", "Forward", "-commit", "abc123"}, &stderr); rc != 0 {
		t.Fatalf("exit %d: %s", rc, stderr.String())
	}
	rep, err := os.ReadFile(filepath.Join(dir, "REPORT.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(rep)
	for _, tg := range targets {
		if !strings.Contains(s, "| "+tg.Figure+" | `"+tg.Bench+"` |") {
			t.Errorf("no row for %q", tg.Figure)
		}
	}
	for _, want := range []string{
		"| forwarding 200 B vs GSO/GRO relay | `router/BenchmarkForward/router-raw-200B` | 54,007 | pdus/s | 741,467 (BenchmarkForward/gso-relay-200B pdus/s) | 0.073× | ≥ 0.2× | ❌ **NOT met** | #16 |",
		"| catch-up after a restart | `capsuled/BenchmarkCatchUpAfterRestart` | — | records/s | — | — | ≥ 50,000 records/s | not run | #16 |",
		"**Partial run**: `BENCH=Forward`",
		"abc123",
		"](forwarding.png)", "](latency.png)", "](targets.png)",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	for _, png := range []string{"forwarding.png", "latency.png", "targets.png"} {
		if fi, err := os.Stat(filepath.Join(dir, png)); err != nil || fi.Size() < 1000 {
			t.Errorf("%s: %v", png, err)
		}
	}

	dir2 := t.TempDir()
	if rc := run([]string{"-in", "testdata/fail.json", "-out", dir2, "-no-plots"}, &stderr); rc != 1 {
		t.Errorf("a run with failed benchmarks: exit %d, want 1", rc)
	}
	rep, err = os.ReadFile(filepath.Join(dir2, "REPORT.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rep), "| `benchfail/BenchmarkBroken` | fail | x_test.go:6: setting up / x_test.go:7: the sink never answered |") {
		t.Errorf("the failed benchmark is not listed with its reason:\n%s", rep)
	}
	if rc := run([]string{"-in", "testdata/none.json", "-out", t.TempDir()}, &stderr); rc != 2 {
		t.Errorf("missing input: exit %d, want 2", rc)
	}
}

func TestClipLongReason(t *testing.T) {
	long := strings.Repeat("rate_limited; ", 200)
	got := clip([]string{long, "short"})
	if n := len([]rune(got[0])); n > 242 || !strings.HasSuffix(got[0], " …") || got[1] != "short" {
		t.Errorf("clip: %d runes %q", n, got)
	}
}

// TestTargetBars: each bar of targets.png carries its own row's score,
// under met or not met, top to bottom in the targets' order.
func TestTargetBars(t *testing.T) {
	targets, _ := ParseTargets(targetsYAML)
	rows := Evaluate(parseFile(t, "forward.json"), targets)
	names, met, notMet := targetBars(rows)
	if len(names) != 4 || len(met) != 4 || len(notMet) != 4 {
		t.Fatalf("%d bars (%v), want the 4 forwarding rows with a target", len(names), names)
	}
	// Bottom first: the last row with a target is names[0].
	want := []struct {
		name        string
		met, notMet float64
		tolerance   float64
	}{
		{"forwarding 1,300 B vs unbatched relay", 1.816, 0, 1e-3},
		{"forwarding 200 B vs unbatched relay", 0, 0.857, 1e-3},
		{"forwarding 1,300 B vs GSO/GRO relay", 0, 0.025 / 0.2, 1e-3},
		{"forwarding 200 B vs GSO/GRO relay", 0, 0.07284 / 0.2, 1e-3},
	}
	for i, w := range want {
		if names[i] != w.name || math.Abs(met[i]-w.met) > w.tolerance || math.Abs(notMet[i]-w.notMet) > w.tolerance {
			t.Errorf("bar %d: %q met %.3f not met %.3f, want %q %.3f %.3f", i, names[i], met[i], notMet[i], w.name, w.met, w.notMet)
		}
	}
}

// TestBuildFailed: a package whose tests do not build (real go test -json
// output) fails every target in it, with the compiler's error.
func TestBuildFailed(t *testing.T) {
	run := parseFile(t, "buildfail.json")
	targets, err := ParseTargets([]byte(`- {figure: never built, bench: broken/BenchmarkNeverBuilt, metric: ns/op, op: "<=", target: 1}`))
	if err != nil {
		t.Fatal(err)
	}
	r := Evaluate(run, targets)[0]
	if r.Status != Failed || !strings.Contains(r.Why, "build failed: ./x_test.go:5:42: undefined: undefinedCall") {
		t.Errorf("status %s, why %q", r.Status, r.Why)
	}
}
