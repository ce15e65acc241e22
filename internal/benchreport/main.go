// Command benchreport turns the output of `make bench` (go test -bench
// -json over every package) into bench/REPORT.md: every target of
// targets.yaml with its figure, the same run's baseline, their ratio and
// whether it is met — "not run", "FAILED" or "skipped" when it has no
// figure, never missing — plus machine facts, every figure of the run, and
// PNG plots. It is a developer tool run by `go run` from the Makefile, not
// a `gdp` subcommand: nothing an operator deploys needs it.
//
//	go run ./internal/benchreport -in bench/out/bench.json -out bench
//
// It exits 1 when a benchmark or package failed (after writing the
// report), 2 on bad flags or unreadable input.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("benchreport", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("in", "-", "go test -bench output (-json or plain text); - for stdin")
	out := fs.String("out", "bench", "directory for REPORT.md and the plots")
	loadLog := fs.String("load-log", "", "load samples taken during the run: lines of \"<unix seconds> <contents of /proc/loadavg>\"")
	loadStart := fs.String("load-start", "", "/proc/loadavg when the run started (default: the load log's first sample)")
	commit := fs.String("commit", "", "commit the benchmarks ran at")
	filter := fs.String("filter", ".", "the -bench filter of the run (BENCH)")
	benchtime := fs.String("benchtime", "", "the -benchtime of the run")
	command := fs.String("command", "make bench", "the command that reproduces the run")
	targetsFile := fs.String("targets", "", "targets file (default: the targets.yaml built in)")
	noPlots := fs.Bool("no-plots", false, "write no PNGs")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "benchreport: %v\n", err)
		return 2
	}
	var r io.Reader = os.Stdin
	if *in != "-" {
		f, err := os.Open(*in)
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		r = f
	}
	tdata := targetsYAML
	if *targetsFile != "" {
		var err error
		if tdata, err = os.ReadFile(*targetsFile); err != nil {
			return fail(err)
		}
	}
	targets, err := ParseTargets(tdata)
	if err != nil {
		return fail(err)
	}
	res, err := Parse(r)
	if err != nil {
		return fail(err)
	}
	m := Meta{
		Command:   *command,
		Filter:    *filter,
		Benchtime: *benchtime,
		CPU:       cpuModel(),
		Cores:     runtime.NumCPU(),
		LoadStart: *loadStart,
		LoadEnd:   readLoad(),
		GoVersion: runtime.Version(),
		Commit:    *commit,
		Generated: time.Now(),
	}
	if *loadLog != "" {
		f, err := os.Open(*loadLog)
		if err != nil {
			return fail(err)
		}
		res.Load, m.LoadLogBad, err = ParseLoadLog(f)
		f.Close()
		if err != nil {
			return fail(err)
		}
		if m.LoadStart == "" && len(res.Load) > 0 {
			s := res.Load[0]
			m.LoadStart = fmt.Sprintf("%.2f %.2f %.2f", s.L1, s.L5, s.L15)
		}
	}
	rows := Evaluate(res, targets)
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fail(err)
	}
	if !*noPlots {
		if m.Plots, err = Plots(*out, res, rows); err != nil {
			return fail(err)
		}
	}
	var buf bytes.Buffer
	if err := WriteReport(&buf, res, rows, m); err != nil {
		return fail(err)
	}
	// Whole or nothing: a reader never sees half a report.
	path := filepath.Join(*out, "REPORT.md")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	counts := map[string]int{}
	for _, row := range rows {
		counts[row.Status]++
	}
	fmt.Fprintf(stderr, "benchreport: %s: %d results, %d targets (%d met, %d not met, %d not run, %d failed), %d malformed lines ignored\n",
		path, len(res.Results), len(rows), counts[Met], counts[NotMet], counts[NotRun], counts[Failed], len(res.Malformed))
	failed := len(res.PkgFailed) > 0
	for _, o := range res.Outcomes {
		failed = failed || o.Status == "fail"
	}
	if failed {
		fmt.Fprintf(stderr, "benchreport: some benchmarks or packages failed (see %s)\n", path)
		return 1
	}
	return 0
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func readLoad() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
