package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDoctorWarnsShareAboveTotal: gdp doctor --config warns for a share
// configured above the total it is part of — the mistake that leaves a
// share that never bites — naming both keys, and stays quiet for the
// shipped defaults and for -1 (no bound, chosen on purpose).
func TestDoctorWarnsShareAboveTotal(t *testing.T) {
	dir := t.TempDir()
	const gib = int64(1) << 30
	for _, c := range []struct {
		name, role, yaml string
		disk             int64
		want             []string // checks that warn, each naming its total
		totals           []string
	}{
		{"capsuled defaults on a 1 TiB disk", "capsuled", "", 1024 * gib, nil, nil},
		{"per requester above max_placements", "capsuled", "placement:\n  max_per_requester: 70000\n", 1024 * gib,
			[]string{"share placement.max_per_requester"}, []string{"placement.max_placements"}},
		{"per domain above a lowered max_placements", "capsuled", "placement:\n  max_placements: 2000\n  max_per_requester: -1\n", 1024 * gib,
			[]string{"share placement.max_per_domain"}, []string{"placement.max_placements"}},
		{"the default bytes shares on a 10 GiB disk", "capsuled", "", 10 * gib,
			[]string{"share placement.max_bytes_per_requester", "share placement.max_bytes_per_domain"}, []string{"the disk", "the disk"}},
		{"no bound is not a mistake", "capsuled", "placement:\n  max_per_requester: -1\n  max_bytes_per_requester: -1\n  max_bytes_per_domain: -1\n", 10 * gib, nil, nil},
		{"per subscriber above the total", "capsuled", "max_subscriptions: 10\nmax_subscriptions_per_subscriber: 64\n", 1024 * gib,
			[]string{"share max_subscriptions_per_subscriber"}, []string{"max_subscriptions"}},
		{"the unproven pool above the total", "capsuled", "max_subscriptions: 10\nmax_subscriptions_per_subscriber: 5\nmax_subscriptions_unproven: 64\n", 1024 * gib,
			[]string{"share max_subscriptions_unproven"}, []string{"max_subscriptions"}},
		{"router defaults", "router", "", 0, nil, nil},
		{"router tunnels per identity above per domain", "router", "face:\n  max_per_identity: 2000\n", 0,
			[]string{"share face.max_per_identity"}, []string{"face.max_per_domain"}},
		{"router names per domain above the FIB", "router", "fib_size: 50000\n", 0,
			[]string{"share advertise.max_names_per_identity", "share advertise.max_names_per_domain"}, []string{"fib_size", "fib_size"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.role+".yaml")
			if err := os.WriteFile(p, []byte(c.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			rs := runDoctor(doctorOptions{config: p, role: c.role, keystore: dir, procSys: dir,
				disk: func(string) (int64, error) { return c.disk, nil }})
			got := map[string]checkResult{}
			var warned []string
			for _, r := range rs {
				if r.Check == "config" && r.Status != checkOK {
					t.Fatalf("config check: %+v", r)
				}
				if strings.HasPrefix(r.Check, "share") {
					got[r.Check] = r
					if r.Status != checkOK {
						warned = append(warned, r.Check)
					}
				}
			}
			if len(warned) != len(c.want) {
				t.Fatalf("warned %q, want %q", warned, c.want)
			}
			for i, w := range c.want {
				r := got[w]
				if r.Status != checkWarn || !strings.Contains(r.Detail, c.totals[i]) || !strings.Contains(r.Fix, strings.TrimPrefix(w, "share ")) {
					t.Errorf("%s: %+v, want a warning naming %s with a fix", w, r, c.totals[i])
				}
			}
			if len(c.want) == 0 && got["shares"].Status != checkOK {
				t.Errorf("no share above its total, but: %+v", got)
			}
		})
	}
}
