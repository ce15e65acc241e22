package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// dashboardFile is the Grafana dashboard operators import
// (docs/OPERATIONS.md "Monitoring").
var dashboardFile = filepath.Join("..", "..", "deploy", "grafana", "gdpnet.json")

// dashboardExprs returns every PromQL expression of the dashboard: each
// panel's targets (rows' nested panels included) and each query variable.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	type target struct {
		Expr string `json:"expr"`
	}
	type panel struct {
		Title   string   `json:"title"`
		Type    string   `json:"type"`
		Targets []target `json:"targets"`
		Panels  []panel  `json:"panels"`
	}
	var d struct {
		Title      string  `json:"title"`
		UID        string  `json:"uid"`
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.Title == "" || d.UID == "" {
		t.Errorf("%s: no title or uid", dashboardFile)
	}
	var exprs []string
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("panel %q has an empty expression", p.Title)
				}
				exprs = append(exprs, tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		switch q := v.Query.(type) {
		case string:
			exprs = append(exprs, q)
		case map[string]any:
			if s, ok := q["query"].(string); ok {
				exprs = append(exprs, s)
			}
		}
	}
	return exprs
}

var (
	promBraces  = regexp.MustCompile(`\{[^}]*\}`)  // label matchers
	promRange   = regexp.MustCompile(`\[[^\]]*\]`) // range and subquery durations
	promGroup   = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promString  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`) // string literals
	promIdent   = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	promKeyword = []string{"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "inf", "nan"}
)

// promMetricNames returns the metric names expr reads: identifiers that are
// not functions, keywords, label names or Grafana variables, with a
// histogram's _bucket, _sum and _count suffix removed.
func promMetricNames(expr string) []string {
	s := promString.ReplaceAllString(expr, `""`)
	s = promBraces.ReplaceAllString(s, " ")
	s = promRange.ReplaceAllString(s, " ")
	s = promGroup.ReplaceAllString(s, " ")
	s = regexp.MustCompile(`\$\{?[a-zA-Z_]+\}?`).ReplaceAllString(s, " ")
	var names []string
	for _, m := range promIdent.FindAllString(s, -1) {
		if strings.HasSuffix(m, "(") {
			continue // a function call
		}
		if slices.Contains(promKeyword, strings.ToLower(m)) {
			continue
		}
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			m = strings.TrimSuffix(m, suf)
		}
		names = append(names, m)
	}
	return names
}

func TestPromMetricNames(t *testing.T) {
	for expr, want := range map[string][]string{
		`sum by (reason) (rate(gdp_router_pdus_dropped_total{instance=~"$instance",reason!="x"}[$__rate_interval]))`: {"gdp_router_pdus_dropped_total"},
		`histogram_quantile(0.99, sum by (le) (rate(gdp_router_resolver_lookup_seconds_bucket[5m])))`:                {"gdp_router_resolver_lookup_seconds"},
		`sum(rate(a_sum[1m])) / sum(rate(a_count[1m])) and on (instance) b > bool 0`:                                 {"a", "a", "b"},
		`min by (kind) (gdp_cert_expiry_seconds{instance=~"${instance}"}) / 86400`:                                   {"gdp_cert_expiry_seconds"},
		`(gdp_capsuled_adcert_expiry_timestamp_seconds - time()) / 86400`:                                            {"gdp_capsuled_adcert_expiry_timestamp_seconds"},
		`label_values(gdp_build_info, instance)`:                                                                     {"gdp_build_info", "instance"},
	} {
		if got := promMetricNames(expr); !slices.Equal(got, want) {
			t.Errorf("promMetricNames(%s) = %v, want %v", expr, got, want)
		}
	}
}

// dashboardMetricNames is every metric the dashboard queries.
func dashboardMetricNames(t *testing.T) []string {
	seen := map[string]bool{}
	for _, e := range dashboardExprs(t) {
		if strings.HasPrefix(e, "label_values(") {
			// label_values(metric, label): only the metric is one.
			e = strings.TrimPrefix(e, "label_values(")
			e, _, _ = strings.Cut(e, ",")
		}
		for _, n := range promMetricNames(e) {
			seen[n] = true
		}
	}
	var names []string
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// TestGrafanaDashboardParses checks the dashboard is valid JSON with a
// query in every panel, and that it covers what docs/OPERATIONS.md says it
// shows. Whether each metric is exported is checked against the running
// daemons in TestOperationsWalkthroughDaemons (checkDashboardMetrics).
func TestGrafanaDashboardParses(t *testing.T) {
	names := dashboardMetricNames(t)
	for _, want := range []string{"gdp_router_pdus_in_total", "gdp_router_pdus_dropped_total", "gdp_router_advertisements_total",
		"gdp_router_resolver_lookups_total", "gdp_capsuled_appended_records_total", "gdp_capsuled_requests_total",
		"gdp_capsuled_synced_records_total", "gdp_cert_expiry_seconds"} {
		if !slices.Contains(names, want) {
			t.Errorf("the dashboard does not query %s", want)
		}
	}
	for _, n := range names {
		if !strings.HasPrefix(n, "gdp_") {
			t.Errorf("the dashboard queries %s, not a gdp metric", n)
		}
	}
}

// checkDashboardMetrics fails for each metric the dashboard queries that
// none of the scraped pages (the daemons' /metrics, concatenated) has a
// series of. The daemons create every labelled series they know of at
// zero when they start, so a metric absent here is a misspelling or a
// metric no daemon has.
func checkDashboardMetrics(t *testing.T, pages string) {
	t.Helper()
	names := dashboardMetricNames(t)
	if len(names) < 20 {
		t.Errorf("only %d metrics found in the dashboard", len(names))
	}
	for _, n := range names {
		if _, ok := promValue(pages, n); ok {
			continue
		}
		if _, ok := promValue(pages, n+"_count"); ok { // a histogram
			continue
		}
		t.Errorf("%s queries %s; no daemon exports it", dashboardFile, n)
	}
}
