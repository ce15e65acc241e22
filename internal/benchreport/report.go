package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Meta is what the report says about the run besides its figures.
type Meta struct {
	Command    string // the command that reproduces the run
	Filter     string // BENCH: "." for everything
	Benchtime  string
	CPU        string // CPU model (the run's "cpu:" line if empty)
	Cores      int
	LoadStart  string // /proc/loadavg when the run started
	LoadEnd    string // and when the report was written
	GoVersion  string
	Commit     string
	Plots      []Plot // written next to REPORT.md
	Generated  time.Time
	LoadLogBad int // load log lines that did not parse
}

// Plot is a PNG the report links.
type Plot struct{ File, Title string }

// WriteReport writes the Markdown report.
func WriteReport(w io.Writer, run *Run, rows []Row, m Meta) error {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }

	p("# Benchmark report\n\n")
	p("Written by `make bench` (`go run ./internal/benchreport`) from one run of the benchmarks")
	if !run.Start.IsZero() {
		p(", %s – %s UTC (%s)", run.Start.UTC().Format("2006-01-02 15:04:05"), run.End.UTC().Format("15:04:05"),
			run.End.Sub(run.Start).Round(time.Second))
	}
	p(". Every figure is measured beside its baseline in the same run; ratio = value / baseline.\n\n")
	if m.Filter != "" && m.Filter != "." {
		p("**Partial run**: `BENCH=%s` — only the benchmarks matching it ran; every other target shows \"not run\".\n\n", m.Filter)
	}

	p("## Machine\n\n")
	cpu := run.CPU // what go test saw
	if cpu == "" {
		cpu = m.CPU
	}
	p("| CPU | cores | load at start (1/5/15 min) | load at end | 1-min load during the run (min / median / max, %d samples) | Go | commit |\n", len(run.Load))
	p("|---|---|---|---|---|---|---|\n")
	p("| %s | %d | %s | %s | %s | %s | %s |\n\n", orDash(cpu), m.Cores, orDash(loadTriple(m.LoadStart)), orDash(loadTriple(m.LoadEnd)),
		loadSpread(run.Load), orDash(m.GoVersion), orDash(m.Commit))
	p("The machine is shared (2 cores; other builds and tests run beside the benchmarks), so absolute rates move with the load: read the ratios. The load column below is the 1-minute load average when the figure's benchmark finished.\n\n")

	p("## Targets\n\n")
	count := map[string]int{}
	for _, r := range rows {
		count[r.Status]++
	}
	var sum []string
	for _, st := range []string{Met, NotMet, NoTarget, NotRun, Failed, Skipped, NoMetric, NoBaseline, BadBaseline} {
		if count[st] > 0 {
			sum = append(sum, fmt.Sprintf("%d %s", count[st], st))
		}
	}
	p("%d rows (targets.yaml): %s.\n\n", len(rows), strings.Join(sum, ", "))
	p("| figure | benchmark | value | unit | baseline | ratio | target | status | issue | load |\n")
	p("|---|---|---|---|---|---|---|---|---|---|\n")
	var whys []string
	for i, r := range rows {
		val, base, ratio := "—", "—", "—"
		if r.HasValue {
			val = num(r.Value)
		}
		if r.HasBaseline() {
			base = "(" + benchLabel(r.baselineBench(), r.Bench) + " " + r.baselineMetric() + ")"
			if r.HasBase {
				base = num(r.Base) + " " + base
			}
		}
		if r.HasR {
			ratio = fmt.Sprintf("%.3f×", r.Ratio)
		}
		status := r.Status
		switch r.Status {
		case Met:
			status = "✅ met"
		case NotMet:
			status = "❌ **NOT met**"
		case Failed:
			status = "❌ **FAILED**"
		}
		if r.Why != "" {
			status += fmt.Sprintf(" [%d]", i+1)
			whys = append(whys, fmt.Sprintf("%d. %s: %s", i+1, r.Figure, r.Why))
		}
		if r.Note != "" {
			whys = append(whys, fmt.Sprintf("%d. %s: %s", i+1, r.Figure, r.Note))
		}
		load := "—"
		if r.HasLoad {
			load = fmt.Sprintf("%.1f", r.Load)
		}
		p("| %s | `%s` | %s | %s | %s | %s | %s | %s | %s | %s |\n", esc(r.Figure), r.Bench, val, esc(r.Metric), esc(base), ratio,
			targetText(r), status, issueText(r.Issue), load)
	}
	p("\n")
	if len(whys) > 0 {
		p("Notes:\n\n%s\n\n", strings.Join(whys, "\n"))
	}

	if len(m.Plots) > 0 {
		p("## Plots\n\n")
		for _, pl := range m.Plots {
			p("### %s\n\n![%s](%s)\n\n", pl.Title, pl.Title, pl.File)
		}
	}

	p("## Every figure of the run\n\n")
	if len(run.Results) == 0 {
		p("No benchmark reported a result.\n\n")
	} else {
		p("| benchmark | runs × iterations | figures |\n|---|---|---|\n")
		for _, r := range run.Results {
			var f []string
			for _, u := range r.Units() {
				v, _ := r.Value(u)
				f = append(f, num(v)+" "+esc(u))
			}
			its := make([]string, len(r.Iters))
			for i, n := range r.Iters {
				its[i] = strconv.FormatInt(n, 10)
			}
			p("| `%s` | %s | %s |\n", r.Key(), strings.Join(its, ", "), strings.Join(f, "; "))
		}
		p("\nWith more than one run of a benchmark (-count), each figure is the median.\n\n")
	}

	var bad []string
	keys := make([]string, 0, len(run.Outcomes))
	for k := range run.Outcomes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		o := run.Outcomes[k]
		bad = append(bad, fmt.Sprintf("| `%s` | %s | %s |", k, o.Status, esc(strings.Join(o.Reason, " / "))))
	}
	pkgs := make([]string, 0, len(run.PkgFailed))
	for k := range run.PkgFailed {
		pkgs = append(pkgs, k)
	}
	sort.Strings(pkgs)
	for _, k := range pkgs {
		bad = append(bad, fmt.Sprintf("| package `%s` | fail | %s |", k, esc(run.PkgFailed[k])))
	}
	if len(bad) > 0 {
		p("## Failed and skipped\n\n| benchmark or test | outcome | last lines logged |\n|---|---|---|\n%s\n\n", strings.Join(bad, "\n"))
	}
	if len(run.Tests) > 0 {
		p("## Tests run with the benchmarks\n\n| test | outcome |\n|---|---|\n")
		ts := make([]string, 0, len(run.Tests))
		for k := range run.Tests {
			ts = append(ts, k)
		}
		sort.Strings(ts)
		for _, k := range ts {
			p("| `%s` | %s |\n", k, run.Tests[k])
		}
		p("\n")
	}

	p("## Input\n\n%d lines of `go test` output read; %d benchmark result lines did not parse and were ignored", run.Lines, len(run.Malformed))
	if len(run.Malformed) > 0 {
		p(":\n\n```\n")
		for _, l := range run.Malformed[:min(5, len(run.Malformed))] {
			p("%s\n", strings.TrimSpace(l))
		}
		p("```\n\n")
	} else {
		p(".")
	}
	if m.LoadLogBad > 0 {
		p(" %d load-log lines did not parse.", m.LoadLogBad)
	}
	p("\n\n## How to reproduce\n\n```\n%s\n```\n\n", m.Command)
	p("`make bench` runs `go test -run '^$' -bench \"$BENCH\" -benchtime $BENCHTIME -json` over every package (and, for a full run, the 100 MB QUIC-over-names integrity test), samples /proc/loadavg every 5 s, then this report. Targets: internal/benchreport/targets.yaml (one line per figure).\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "—"
	}
	return esc(strings.TrimSpace(s))
}

// loadTriple keeps the three averages of a /proc/loadavg line.
func loadTriple(s string) string {
	f := strings.Fields(s)
	if len(f) < 3 {
		return s
	}
	return strings.Join(f[:3], " / ")
}

func loadSpread(l []LoadSample) string {
	if len(l) == 0 {
		return "—"
	}
	v := make([]float64, len(l))
	for i, s := range l {
		v[i] = s.L1
	}
	slices.Sort(v)
	return fmt.Sprintf("%.2f / %.2f / %.2f", v[0], v[len(v)/2], v[len(v)-1])
}

// benchLabel names the baseline: "same" when it is the figure's own
// benchmark, else its name without the common package prefix.
func benchLabel(base, of string) string {
	if base == of {
		return "same benchmark,"
	}
	bp, _, _ := strings.Cut(base, "/Benchmark")
	op, _, _ := strings.Cut(of, "/Benchmark")
	if bp == op {
		return strings.TrimPrefix(base, bp+"/")
	}
	return base
}

func targetText(r Row) string {
	if r.Op == "" {
		return "—"
	}
	op := "≥"
	if r.Op == "<=" {
		op = "≤"
	}
	if r.OnRatio() {
		return fmt.Sprintf("%s %s×", op, strconv.FormatFloat(r.Bound, 'f', -1, 64))
	}
	b := num(r.Bound)
	if r.Bound == math.Trunc(r.Bound) {
		b = group(strconv.FormatFloat(r.Bound, 'f', 0, 64))
	}
	return fmt.Sprintf("%s %s %s", op, b, esc(r.Metric))
}

func issueText(n int) string {
	if n == 0 {
		return "bench doc"
	}
	return fmt.Sprintf("#%d", n)
}

// esc keeps a cell inside its table column.
func esc(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// num prints a figure with about four significant digits, thousands
// separated.
func num(v float64) string {
	a := math.Abs(v)
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return fmt.Sprint(v)
	case a >= 1000:
		return group(strconv.FormatFloat(v, 'f', 0, 64))
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case a == 0:
		return "0"
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

func group(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
