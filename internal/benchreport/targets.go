package main

import (
	_ "embed"
	"fmt"
	"math"
	"strings"

	"gopkg.in/yaml.v3"
)

//go:embed targets.yaml
var targetsYAML []byte

// Target is one line of targets.yaml.
type Target struct {
	Figure         string  `yaml:"figure"`
	Bench          string  `yaml:"bench"`
	Metric         string  `yaml:"metric"`
	Baseline       string  `yaml:"baseline"`
	BaselineMetric string  `yaml:"baseline_metric"`
	Of             string  `yaml:"of"`
	Op             string  `yaml:"op"`
	Bound          float64 `yaml:"target"`
	Issue          int     `yaml:"issue"`
	Note           string  `yaml:"note"`
}

// HasBaseline says whether the row compares against a baseline.
func (t *Target) HasBaseline() bool { return t.Baseline != "" || t.BaselineMetric != "" }

func (t *Target) baselineBench() string {
	if t.Baseline != "" {
		return t.Baseline
	}
	return t.Bench
}

func (t *Target) baselineMetric() string {
	if t.BaselineMetric != "" {
		return t.BaselineMetric
	}
	return t.Metric
}

// OnRatio says whether the bound applies to the ratio (else the value).
func (t *Target) OnRatio() bool { return t.HasBaseline() && t.Of != "value" }

// ParseTargets reads targets in the targets.yaml format and checks every
// line: a typo must not silently drop a target.
func ParseTargets(data []byte) ([]Target, error) {
	var ts []Target
	if err := yaml.Unmarshal(data, &ts); err != nil {
		return nil, fmt.Errorf("parse targets: %w", err)
	}
	for i, t := range ts {
		where := fmt.Sprintf("target %d (%q)", i+1, t.Figure)
		switch {
		case t.Figure == "" || t.Bench == "" || t.Metric == "":
			return nil, fmt.Errorf("%s: figure, bench and metric are required", where)
		case !strings.Contains(t.Bench, "/Benchmark"):
			return nil, fmt.Errorf("%s: bench %q is not package/BenchmarkName", where, t.Bench)
		case t.Baseline != "" && !strings.Contains(t.Baseline, "/Benchmark"):
			return nil, fmt.Errorf("%s: baseline %q is not package/BenchmarkName", where, t.Baseline)
		case t.Of != "" && t.Of != "ratio" && t.Of != "value":
			return nil, fmt.Errorf("%s: of must be ratio or value, not %q", where, t.Of)
		case t.Of == "ratio" && !t.HasBaseline():
			return nil, fmt.Errorf("%s: a target on the ratio needs a baseline", where)
		case t.Op != "" && t.Op != ">=" && t.Op != "<=":
			return nil, fmt.Errorf("%s: op must be >= or <=, not %q", where, t.Op)
		case t.Op != "" && (t.Bound <= 0 || math.IsInf(t.Bound, 0)):
			return nil, fmt.Errorf("%s: target must be a positive number", where)
		case t.Op == "" && t.Bound != 0:
			return nil, fmt.Errorf("%s: target without op", where)
		}
	}
	return ts, nil
}

// Status of a row.
const (
	Met         = "met"
	NotMet      = "NOT met"
	NoTarget    = "no target"
	NotRun      = "not run"
	Failed      = "FAILED"
	Skipped     = "skipped"
	NoMetric    = "no metric"
	NoBaseline  = "baseline not run"
	BadBaseline = "baseline zero"
)

// Row is one target evaluated against a run.
type Row struct {
	Target
	Value, Base, Ratio      float64
	HasValue, HasBase, HasR bool
	Status                  string
	Why                     string // for not run / failed / skipped / no metric
	Load                    float64
	HasLoad                 bool
}

// Achieved is what the bound applies to (ratio or value).
func (r *Row) Achieved() (float64, bool) {
	if r.OnRatio() {
		return r.Ratio, r.HasR
	}
	return r.Value, r.HasValue
}

// Score is achieved/target for >= and target/achieved for <=: 1 or more
// is met, whichever the direction.
func (r *Row) Score() (float64, bool) {
	a, ok := r.Achieved()
	if !ok || r.Op == "" {
		return 0, false
	}
	if r.Op == ">=" {
		return a / r.Bound, true
	}
	if a == 0 {
		return math.Inf(1), true
	}
	return r.Bound / a, true
}

// absent says why a benchmark has no result in run, or "" if it has one.
func absent(run *Run, key string) (status, why string) {
	if run.Result(key) != nil {
		return "", ""
	}
	// The benchmark itself, or its parent, failed or skipped.
	for k := key; ; {
		if o := run.Outcomes[k]; o != nil {
			if o.Status == "fail" {
				return Failed, strings.Join(o.Reason, " / ")
			}
			return Skipped, strings.Join(o.Reason, " / ")
		}
		i := strings.LastIndexByte(k, '/')
		if i < 0 || !strings.Contains(k[:i], "/Benchmark") {
			break
		}
		k = k[:i]
	}
	pkg := key[:strings.Index(key, "/Benchmark")]
	switch why := run.PkgFailed[pkg]; why {
	case "":
	case "fail":
		// Other benchmarks failed; this one was filtered out or never
		// reached (a panic or the timeout ends the package).
		return NotRun, "package " + pkg + " failed (it may not have reached this benchmark)"
	default:
		return Failed, "package " + pkg + ": " + why
	}
	return NotRun, ""
}

// Evaluate gives one row per target, in the targets' order: every target
// appears, whatever the run holds.
func Evaluate(run *Run, targets []Target) []Row {
	rows := make([]Row, 0, len(targets))
	for _, t := range targets {
		r := Row{Target: t}
		rows = append(rows, evaluate(run, r))
	}
	return rows
}

func evaluate(run *Run, r Row) Row {
	if st, why := absent(run, r.Bench); st != "" {
		r.Status, r.Why = st, why
		return r
	}
	res := run.Result(r.Bench)
	if l, ok := run.LoadAt(res.At); ok {
		r.Load, r.HasLoad = l, true
	}
	r.Value, r.HasValue = res.Value(r.Metric)
	if !r.HasValue {
		r.Status, r.Why = NoMetric, fmt.Sprintf("%s did not report %s", r.Bench, r.Metric)
		return r
	}
	if r.HasBaseline() {
		if st, why := absent(run, r.baselineBench()); st != "" {
			r.Status, r.Why = NoBaseline, fmt.Sprintf("baseline %s: %s %s", r.baselineBench(), st, why)
		} else if r.Base, r.HasBase = run.Result(r.baselineBench()).Value(r.baselineMetric()); !r.HasBase {
			r.Status, r.Why = NoBaseline, fmt.Sprintf("%s did not report %s", r.baselineBench(), r.baselineMetric())
		} else if r.Base == 0 {
			r.Status, r.Why = BadBaseline, "the baseline reported 0: no ratio"
		} else {
			r.Ratio, r.HasR = r.Value/r.Base, true
		}
		if r.Status != "" && r.OnRatio() {
			return r
		}
	}
	switch {
	case r.Op == "":
		if r.Status == "" {
			r.Status = NoTarget
		}
	default:
		a, _ := r.Achieved()
		if (r.Op == ">=" && a >= r.Bound) || (r.Op == "<=" && a <= r.Bound) {
			r.Status = Met
		} else {
			r.Status = NotMet
		}
	}
	return r
}
