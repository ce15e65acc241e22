package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Module is the import-path prefix stripped from package names: figures
// are keyed "router/BenchmarkForward/router-raw-200B".
const Module = "github.com/gdpnet/gdpnet/"

// Result is one benchmark's figures. A benchmark that printed more than
// one result line (-count > 1) keeps every sample; Value gives the median.
type Result struct {
	Pkg     string // short package, e.g. "router"
	Name    string // e.g. "BenchmarkForward/router-raw-200B", without the -GOMAXPROCS suffix
	Iters   []int64
	Samples []map[string]float64 // unit -> value, one map per result line
	At      time.Time            // when its (last) result line was printed; zero for plain text
}

// Key is how targets name the benchmark.
func (r *Result) Key() string { return r.Pkg + "/" + r.Name }

// Value is the median of unit over the samples that reported it.
func (r *Result) Value(unit string) (float64, bool) {
	var v []float64
	for _, s := range r.Samples {
		if x, ok := s[unit]; ok {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return 0, false
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2], true
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2, true
}

// Units lists the units reported, in the order of the first sample's line.
func (r *Result) Units() []string {
	var u []string
	for _, s := range r.Samples {
		for k := range s {
			if !slices.Contains(u, k) {
				u = append(u, k)
			}
		}
	}
	slices.SortStableFunc(u, func(a, b string) int { return unitOrder(a) - unitOrder(b) })
	return u
}

// unitOrder puts the testing package's own units last.
func unitOrder(u string) int {
	switch u {
	case "ns/op":
		return 1
	case "MB/s":
		return 2
	case "B/op":
		return 3
	case "allocs/op":
		return 4
	}
	return 0
}

// Outcome is how a benchmark or test ended when it did not simply pass.
type Outcome struct {
	Key    string   // "pkg/Name"
	Status string   // "fail" or "skip"
	Reason []string // its last log lines
}

// Run is everything parsed from one `go test -bench` output.
type Run struct {
	Results   []*Result
	byKey     map[string]*Result
	Outcomes  map[string]*Outcome // benchmarks and tests that failed or skipped
	Tests     map[string]string   // non-benchmark tests: key -> "pass" / "fail" / "skip"
	PkgFailed map[string]string   // package -> why ("build failed", "fail")
	Packages  []string            // packages seen, in order
	CPU       string              // from the "cpu:" header line
	Start     time.Time           // first JSON event
	End       time.Time           // last JSON event
	Lines     int                 // lines read
	Malformed []string            // benchmark result lines that did not parse
	Load      []LoadSample        // the load log, sorted by time
}

// Result returns the result for "pkg/Benchmark...", or nil.
func (r *Run) Result(key string) *Result { return r.byKey[key] }

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Time    time.Time
	Action  string
	Package string
	Test    string
	Output  string
	// ImportPath names the package of a build-output event ("pkg
	// [pkg.test]"; go 1.24 and later print build errors that way).
	ImportPath string
}

// resultLine matches a benchmark result: name, iterations, then pairs of
// value and unit.
var procSuffix = regexp.MustCompile(`-\d+$`)

// Parse reads `go test -bench` output, either `-json` events or plain
// text, or a mix of both (a line that is not a JSON event is taken as
// plain output). It never fails on content: result lines that do not
// parse are counted in Malformed.
func Parse(in io.Reader) (*Run, error) {
	run := &Run{
		byKey:     map[string]*Result{},
		Outcomes:  map[string]*Outcome{},
		Tests:     map[string]string{},
		PkgFailed: map[string]string{},
	}
	p := parser{run: run, partial: map[string]string{}, logs: map[string][]string{}, header: map[string]string{}, known: map[string]bool{}, build: map[string][]string{}}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		run.Lines++
		line := sc.Text()
		var ev event
		if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &ev) == nil && ev.Action != "" {
			p.event(ev)
			continue
		}
		p.text(p.plainPkg, "", line, time.Time{})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read benchmark output: %w", err)
	}
	for k, rest := range p.partial { // an output chunk never ended by a newline
		pkg, test, _ := strings.Cut(k, "\x00")
		p.text(pkg, test, rest, run.End)
	}
	return run, nil
}

type parser struct {
	run      *Run
	plainPkg string            // the last "pkg:" header in plain text
	partial  map[string]string // JSON output chunks awaiting their newline, per package+test
	logs     map[string][]string
	header   map[string]string   // package -> the last bare benchmark name line
	last     *Outcome            // plain text: the outcome whose log lines follow its "--- FAIL:" line
	known    map[string]bool     // "pkg/Name" of benchmarks and tests seen starting or reporting
	build    map[string][]string // package -> its build errors (the first three)
	suffix   string              // the -GOMAXPROCS suffix result lines carry ("-2")
}

func short(pkg string) string { return strings.TrimPrefix(pkg, Module) }

func (p *parser) seePkg(pkg string) {
	if pkg != "" && !slices.Contains(p.run.Packages, pkg) {
		p.run.Packages = append(p.run.Packages, pkg)
	}
}

func (p *parser) event(ev event) {
	if !ev.Time.IsZero() {
		if p.run.Start.IsZero() || ev.Time.Before(p.run.Start) {
			p.run.Start = ev.Time
		}
		if ev.Time.After(p.run.End) {
			p.run.End = ev.Time
		}
	}
	if ev.Action == "build-output" {
		if f := strings.Fields(ev.ImportPath); len(f) > 0 {
			pkg := short(f[0])
			if l := strings.TrimSpace(ev.Output); l != "" && !strings.HasPrefix(l, "#") && len(p.build[pkg]) < 3 {
				p.build[pkg] = append(p.build[pkg], clip([]string{l})...)
			}
		}
		return
	}
	pkg := short(ev.Package)
	p.seePkg(pkg)
	switch ev.Action {
	case "output":
		k := pkg + "\x00" + ev.Test
		buf := p.partial[k] + ev.Output
		for {
			i := strings.IndexByte(buf, '\n')
			if i < 0 {
				break
			}
			p.text(pkg, ev.Test, buf[:i], ev.Time)
			buf = buf[i+1:]
		}
		if buf == "" {
			delete(p.partial, k)
		} else {
			p.partial[k] = buf
		}
	case "run":
		p.known[pkg+"/"+ev.Test] = true
	case "fail", "skip", "pass":
		if ev.Test == "" {
			if ev.Action == "fail" && p.run.PkgFailed[pkg] == "" {
				p.run.PkgFailed[pkg] = "fail"
			}
			return
		}
		p.outcome(pkg, ev.Test, ev.Action)
	}
}

func (p *parser) outcome(pkg, test, action string) *Outcome {
	// A benchmark that fails after its first run is reported with the
	// -GOMAXPROCS suffix ("--- FAIL: BenchmarkAdvertise-2", and so is the
	// JSON event's Test): key it by its name.
	if s := procSuffix.FindString(test); s != "" && !p.known[pkg+"/"+test] &&
		(p.known[pkg+"/"+strings.TrimSuffix(test, s)] || s == p.suffix) {
		test = strings.TrimSuffix(test, s)
	}
	key := pkg + "/" + test
	if !strings.HasPrefix(test, "Benchmark") {
		p.run.Tests[key] = action
	}
	if action == "pass" {
		return nil
	}
	if o := p.run.Outcomes[key]; o != nil && o.Status == "fail" {
		return o // a fail stays a fail
	}
	o := &Outcome{Key: key, Status: action, Reason: clip(p.logs[key])}
	p.run.Outcomes[key] = o
	return o
}

// endPkg is the plain-text line that ends package pkg's output: outcomes
// printed before its "pkg:" header (go test prints a benchmark's
// "--- FAIL:" as soon as it fails, the header only with the first result)
// belong to it; whatever follows belongs to the next package.
func (p *parser) endPkg(pkg string) {
	for k, o := range p.run.Outcomes {
		if strings.HasPrefix(k, "/") {
			delete(p.run.Outcomes, k)
			o.Key = pkg + k
			p.run.Outcomes[o.Key] = o
		}
	}
	p.plainPkg = ""
	p.last = nil
}

// text handles one line of output of package pkg (test is the JSON
// event's Test, "" for plain text).
func (p *parser) text(pkg, test, line string, at time.Time) {
	trimmed := strings.TrimSpace(line)
	if test == "" && p.last != nil {
		// Plain text prints a failed benchmark's log lines, indented,
		// after its "--- FAIL:" line.
		if trimmed != "" && (line[0] == ' ' || line[0] == '\t') && !strings.HasPrefix(trimmed, "--- ") {
			if len(p.last.Reason) < 3 {
				p.last.Reason = append(p.last.Reason, clip([]string{trimmed})...)
			}
			return
		}
		p.last = nil
	}
	switch {
	case strings.HasPrefix(line, "pkg: "):
		p.plainPkg = short(strings.TrimSpace(line[5:]))
		p.seePkg(p.plainPkg)
		return
	case strings.HasPrefix(line, "cpu: "):
		if p.run.CPU == "" {
			p.run.CPU = strings.TrimSpace(line[5:])
		}
		return
	case strings.HasPrefix(line, "ok  \t"):
		if f := strings.Fields(line); len(f) >= 2 {
			p.endPkg(short(f[1]))
		}
		return
	case strings.HasPrefix(line, "FAIL\t"):
		// "FAIL\tpkg\t0.1s" or "FAIL\tpkg [build failed]"
		f := strings.Fields(line)
		if len(f) >= 2 {
			name := short(f[1])
			p.seePkg(name)
			p.endPkg(name)
			why := "fail"
			if strings.Contains(line, "[build failed]") || strings.Contains(line, "[setup failed]") {
				why = "build failed"
				if b := p.build[name]; len(b) > 0 {
					why += ": " + strings.Join(b, " / ")
				}
			}
			if p.run.PkgFailed[name] == "" || why != "fail" {
				p.run.PkgFailed[name] = why
			}
		}
		return
	case strings.HasPrefix(trimmed, "--- FAIL: "), strings.HasPrefix(trimmed, "--- SKIP: "), strings.HasPrefix(trimmed, "--- PASS: "):
		if test != "" {
			return // the JSON event's Action says it
		}
		f := strings.Fields(trimmed)
		if len(f) >= 3 {
			p.last = p.outcome(pkg, f[2], strings.ToLower(strings.TrimSuffix(f[1], ":")))
		}
		return
	case strings.HasPrefix(trimmed, "=== "):
		return
	}
	if strings.HasPrefix(line, "Benchmark") {
		if i := strings.Index(line, "\t--- "); i > 0 {
			// Plain text: "BenchmarkX-2   \t--- FAIL: BenchmarkX-2", the
			// name printed, then the failure instead of a result.
			p.text(pkg, test, line[i+1:], at)
			return
		}
		p.result(pkg, test, line, at)
		return
	}
	// A log line of a benchmark or test ("    file_test.go:12: ..."),
	// kept (the last three) as the reason if it fails or skips.
	if test == "" || trimmed == "" {
		return
	}
	key := pkg + "/" + test
	l := append(p.logs[key], trimmed)
	if len(l) > 3 {
		l = l[len(l)-3:]
	}
	p.logs[key] = l
}

func (p *parser) result(pkg, test, line string, at time.Time) {
	f := strings.Fields(line)
	if len(f) == 1 {
		// The name printed before the benchmark runs (-v / -json).
		p.header[pkg] = f[0]
		p.known[pkg+"/"+f[0]] = true
		return
	}
	iters, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || iters <= 0 || len(f) < 4 || (len(f)-2)%2 != 0 {
		p.run.Malformed = append(p.run.Malformed, line)
		return
	}
	m := map[string]float64{}
	for i := 2; i < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			p.run.Malformed = append(p.run.Malformed, line)
			return
		}
		m[f[i+1]] = v
	}
	name := f[0]
	switch {
	case test != "" && strings.HasPrefix(name, test) && procSuffix.MatchString(name[len(test):]):
		name = test
	case test != "" && name == test:
	case p.header[pkg] != "" && strings.HasPrefix(name, p.header[pkg]) && procSuffix.MatchString(name[len(p.header[pkg]):]):
		name = p.header[pkg]
	case p.header[pkg] == name:
	default:
		name = procSuffix.ReplaceAllString(name, "")
	}
	if s := f[0][len(name):]; s != "" {
		p.suffix = s
	}
	key := pkg + "/" + name
	p.known[key] = true
	r := p.run.byKey[key]
	if r == nil {
		r = &Result{Pkg: pkg, Name: name}
		p.run.byKey[key] = r
		p.run.Results = append(p.run.Results, r)
	}
	r.Iters = append(r.Iters, iters)
	r.Samples = append(r.Samples, m)
	if !at.IsZero() {
		r.At = at
	}
}

// clip shortens log lines kept as a reason (a benchmark may log one line
// of kilobytes).
func clip(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		if r := []rune(l); len(r) > 240 {
			l = string(r[:240]) + " …"
		}
		out[i] = l
	}
	return out
}
