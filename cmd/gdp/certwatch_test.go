package main

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/internal/clock"
)

// The membership's remaining life is a gauge; 20 % left is a WARN, expiry
// an ERROR saying "my membership expired" and what to do, each once; a
// reload with a renewed certificate starts over.
func TestCertWatch(t *testing.T) {
	dom, err := certs.NewIdentity(certs.KindDomain, "d")
	if err != nil {
		t.Fatal(err)
	}
	node, err := certs.NewIdentity(certs.KindRouter, "r")
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Truncate(time.Second)
	member, err := certs.IssueMember(dom, node.Name, t0, t0.Add(100*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	reg := prometheus.NewRegistry()
	w := newCertWatch(zap.New(core), reg)
	now := t0.Add(time.Hour)
	w.now = func() time.Time { return now }
	w.set("member", member, "/etc/gdp/r.member")
	if logs.Len() != 0 {
		t.Fatalf("a fresh certificate logged: %v", logs.All())
	}
	if v := gaugeValue(t, reg, "gdp_cert_expiry_seconds", map[string]string{"kind": "member", "name": node.Name.String()}); v != 99*3600 {
		t.Fatalf("gauge = %v, want %v", v, 99*3600)
	}
	now = t0.Add(81 * time.Hour) // 19 h of 100 left
	w.check()
	w.check()
	warns := logs.FilterLevelExact(zapcore.WarnLevel).All()
	if len(warns) != 1 || !strings.Contains(warns[0].ContextMap()["fix"].(string), "/etc/gdp/r.member") {
		t.Fatalf("want one WARN naming the file, got %v", logs.All())
	}
	now = t0.Add(101 * time.Hour)
	w.check()
	w.check()
	errs := logs.FilterLevelExact(zapcore.ErrorLevel).All()
	if len(errs) != 1 || !strings.Contains(errs[0].Message, "my membership expired") || !strings.Contains(errs[0].ContextMap()["fix"].(string), "SIGHUP") {
		t.Fatalf("want one ERROR \"my membership expired\" with the fix, got %v", logs.All())
	}
	// A renewal, reloaded: quiet again, and the gauge follows.
	renewed, err := certs.IssueMember(dom, node.Name, now, now.Add(100*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	w.set("member", renewed, "/etc/gdp/r.member")
	if logs.Len() != 2 {
		t.Fatalf("the renewed certificate logged: %v", logs.All())
	}
	if v := gaugeValue(t, reg, "gdp_cert_expiry_seconds", map[string]string{"kind": "member", "name": node.Name.String()}); v != 360000 {
		t.Fatalf("gauge after renewal = %v, want 360000", v)
	}
}

// gaugeValue is the value of the one series of name with labels in reg.
func gaugeValue(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s%v", name, labels)
	return 0
}

// TestCertWatchClockSkew: the expiry warnings read the daemon's clock
// (internal/clock): a node whose clock runs 90 hours ahead warns about a
// 100-hour membership issued now, as it will refuse it soon.
func TestCertWatchClockSkew(t *testing.T) {
	dom, _ := certs.NewIdentity(certs.KindDomain, "d")
	node, _ := certs.NewIdentity(certs.KindRouter, "r")
	t0 := time.Now()
	member, err := certs.IssueMember(dom, node.Name, t0.Add(-time.Minute), t0.Add(100*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer clock.SetOffset(clock.SetOffset(90 * time.Hour))
	core, logs := observer.New(zapcore.InfoLevel)
	w := newCertWatch(zap.New(core), nil)
	w.set("member", member, "/etc/gdp/r.member")
	if n := logs.FilterLevelExact(zapcore.WarnLevel).Len(); n != 1 {
		t.Fatalf("%d WARN lines on a clock 90 h ahead, want 1: %v", n, logs.All())
	}
}
