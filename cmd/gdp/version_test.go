package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// gdp version, gdp --version and gdp_build_info say the same: module
// version, revision (+dirty), commit time, build time, Go version.
func TestVersionAndBuildInfo(t *testing.T) {
	defer func(r, b string) { buildRevision, buildTime = r, b }(buildRevision, buildTime)
	buildRevision, buildTime = "0123abcd+dirty", "2026-12-05T14:00:00Z"
	bi := readBuildInfo()
	line := bi.String()
	for _, want := range []string{"revision 0123abcd+dirty", "built 2026-12-05T14:00:00Z", "go1."} {
		if !strings.Contains(line, want) {
			t.Errorf("version line %q lacks %q", line, want)
		}
	}
	var out bytes.Buffer
	rootCmd.SetOut(&out)
	rootCmd.SetArgs([]string{"version"})
	if err := rootCmd.Execute(); err != nil {
		t.Fatal(err)
	}
	rootCmd.SetArgs(nil)
	rootCmd.SetOut(nil)
	if strings.TrimSpace(out.String()) != line {
		t.Errorf("gdp version printed %q, want %q", out.String(), line)
	}
	if !strings.HasPrefix(rootCmd.Version, "(devel)") && !strings.Contains(rootCmd.Version, "revision") {
		t.Errorf("--version is %q", rootCmd.Version)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(buildInfoCollector())
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || mfs[0].GetName() != "gdp_build_info" {
		t.Fatalf("gather: %v %v", mfs, err)
	}
	labels := map[string]string{}
	for _, lp := range mfs[0].GetMetric()[0].GetLabel() {
		labels[lp.GetName()] = lp.GetValue()
	}
	if labels["revision"] != "0123abcd+dirty" || labels["build_time"] != "2026-12-05T14:00:00Z" || !strings.HasPrefix(labels["goversion"], "go1.") || labels["version"] == "" {
		t.Errorf("gdp_build_info labels %v", labels)
	}
}
