package main

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
)

// Set by the Makefile (-ldflags -X): the revision and the time of the
// build, used when the toolchain stamped no VCS information.
var buildRevision, buildTime string

// buildInfo is what `gdp version`, `gdp --version` and the gdp_build_info
// metric say about the binary, from the build information the Go
// toolchain embeds (debug.ReadBuildInfo).
type buildInfo struct {
	Version   string // module version, "(devel)" for a build from a work tree
	Revision  string // VCS revision, "unknown" without VCS stamping
	Time      string // VCS commit time (RFC 3339), "unknown" without it
	Built     string // build time from the Makefile, "unknown" without it
	Modified  bool   // the work tree had uncommitted changes
	GoVersion string
}

func readBuildInfo() buildInfo {
	b := buildInfo{Version: "(devel)", Revision: "unknown", Time: "unknown", Built: "unknown", GoVersion: "unknown"}
	if buildTime != "" {
		b.Built = buildTime
	}
	if r, dirty := strings.CutSuffix(buildRevision, "+dirty"); r != "" {
		b.Revision, b.Modified = r, dirty
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if bi.Main.Version != "" {
		b.Version = bi.Main.Version
	}
	b.GoVersion = bi.GoVersion
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is the one line `gdp version` prints.
func (b buildInfo) String() string {
	rev := b.Revision
	if b.Modified {
		rev += "+dirty"
	}
	return fmt.Sprintf("gdp %s revision %s (commit time %s) built %s with %s", b.Version, rev, b.Time, b.Built, b.GoVersion)
}

// buildInfoCollector is the gdp_build_info gauge: always 1, the build in
// its labels.
func buildInfoCollector() prometheus.Collector {
	b := readBuildInfo()
	rev := b.Revision
	if b.Modified {
		rev += "+dirty"
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "gdp_build_info",
		Help: "Always 1; the labels say which gdp binary runs (as gdp version prints it).",
		ConstLabels: prometheus.Labels{"version": b.Version, "revision": rev, "vcs_time": b.Time,
			"build_time": b.Built, "goversion": b.GoVersion},
	})
	g.Set(1)
	return g
}

// newDaemonRegistry is the Prometheus registry every daemon starts with:
// the Go runtime, the process and gdp_build_info.
func newDaemonRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfoCollector())
	return reg
}

func init() {
	rootCmd.Version = strings.TrimPrefix(readBuildInfo().String(), "gdp ")
	rootCmd.SetVersionTemplate("gdp {{.Version}}\n")
	addCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the gdp version, VCS revision, commit time and Go toolchain",
		Long: `version prints the module version, the VCS revision the binary was built
from (with "+dirty" when the work tree had changes), that commit's time,
the build time and the Go toolchain ("unknown" for what the build did not
record: make build stamps revision and build time). gdp --version prints the same; every daemon exports it
as the gdp_build_info metric.`,
		Example: `  gdp version
  gdp --version`,
		Args: cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), readBuildInfo())
		},
	})
}
