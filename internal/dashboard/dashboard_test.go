package dashboard

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, h http.Handler, method, path string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestHandler: the page, its two assets and the JSON, each with the
// headers that keep the page to itself; nothing else is served and
// nothing but GET (and HEAD).
func TestHandler(t *testing.T) {
	at := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	calls := 0
	h := Handler(func() View {
		calls++
		return View{Kind: "router", Title: "gdpnet router X", Time: at,
			Cards:    []Card{{ID: "faces", Label: "faces", Value: "3"}},
			Counters: []Counter{{ID: "in", Group: "Traffic", Label: "PDUs in", Value: 42}},
			Tables:   []Table{{ID: "fib", Title: "FIB", Columns: []string{"name"}, Rows: [][]string{{"n"}}, Total: 7}}}
	})
	for path, want := range map[string]struct{ ctype, has string }{
		"/":                     {"text/html", `<script src="/dashboard/app.js" defer></script>`},
		"/dashboard/app.js":     {"javascript", "fetch('/api/status'"},
		"/dashboard/style.css":  {"text/css", ".cards"},
		"/api/status":           {"application/json", `"title":"gdpnet router X"`},
		"/api/status?x=1&y=2#z": {"application/json", `"total":7`},
	} {
		r := get(t, h, http.MethodGet, path)
		b := body(t, r)
		if r.StatusCode != http.StatusOK || !strings.Contains(r.Header.Get("Content-Type"), want.ctype) || !strings.Contains(b, want.has) {
			t.Errorf("GET %s: %s %q, want 200 %s with %q:\n%.300s", path, r.Status, r.Header.Get("Content-Type"), want.ctype, want.has, b)
		}
		if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
		if r.Header.Get("X-Content-Type-Options") != "nosniff" || r.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("GET %s: headers %v", path, r.Header)
		}
	}
	var v View
	if err := json.Unmarshal([]byte(body(t, get(t, h, http.MethodGet, "/api/status"))), &v); err != nil {
		t.Fatal(err)
	}
	if !v.Time.Equal(at) || v.Cards[0].Value != "3" || v.Counters[0].Value != 42 || v.Tables[0].Rows[0][0] != "n" {
		t.Errorf("decoded view %+v", v)
	}
	if r := get(t, h, http.MethodGet, "/api/status"); r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("/api/status Cache-Control %q", r.Header.Get("Cache-Control"))
	}
	if r := get(t, h, http.MethodHead, "/"); r.StatusCode != http.StatusOK {
		t.Errorf("HEAD /: %s", r.Status)
	}
	for _, path := range []string{"/nope", "/dashboard/", "/dashboard/index.html", "/dashboard/nope.js", "/dashboard.go",
		"/api/", "/api/status/x", "/index.html", "/assets/app.js"} {
		if r := get(t, h, http.MethodGet, path); r.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", path, r.Status)
		}
	}
	n := calls
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		for _, path := range []string{"/", "/api/status", "/dashboard/app.js"} {
			if r := get(t, h, m, path); r.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: %s, want 405", m, path, r.Status)
			}
		}
	}
	if calls != n {
		t.Errorf("a refused method built the view")
	}
}

// TestHandlerTime: a view without a time gets the time it was taken.
func TestHandlerTime(t *testing.T) {
	h := Handler(func() View { return View{Kind: "x"} })
	var v View
	before := time.Now()
	if err := json.Unmarshal([]byte(body(t, get(t, h, http.MethodGet, "/api/status"))), &v); err != nil {
		t.Fatal(err)
	}
	if v.Time.Before(before.Add(-time.Second)) || v.Time.After(time.Now().Add(time.Second)) {
		t.Errorf("time %v", v.Time)
	}
}

// TestGather: totals over every series, sums per label value over the
// other labels, skipped values left out.
func TestGather(t *testing.T) {
	reg := prometheus.NewRegistry()
	cv := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total", Help: "x"}, []string{"result", "tier"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g", Help: "g"})
	reg.MustRegister(cv, g)
	cv.WithLabelValues("ok", "a").Add(2)
	cv.WithLabelValues("ok", "b").Add(3)
	cv.WithLabelValues("bad", "a").Add(5)
	cv.WithLabelValues("worse", "a")
	g.Set(7)
	m := Gather(reg)
	if got := m.Total("x_total"); got != 10 {
		t.Errorf("Total = %v, want 10", got)
	}
	if got := m.Total("g"); got != 7 {
		t.Errorf("gauge Total = %v, want 7", got)
	}
	if got := m.Total("absent"); got != 0 {
		t.Errorf("absent Total = %v", got)
	}
	by := m.By("G", "x_total", "result", "worse")
	if len(by) != 2 || by[0].Label != "bad" || by[0].Value != 5 || by[1].Label != "ok" || by[1].Value != 5 ||
		by[1].ID != "x_total/ok" || by[1].Group != "G" {
		t.Errorf("By = %+v", by)
	}
	if c := m.Counter("G", "all", "x_total"); c.Value != 10 || c.ID != "x_total" {
		t.Errorf("Counter = %+v", c)
	}
	if by := m.By("G", "x_total", "nolabel"); len(by) != 0 {
		t.Errorf("By a label the metric has not = %+v", by)
	}
	if len(Gather(nil)) != 0 {
		t.Error("Gather(nil) not empty")
	}
}
