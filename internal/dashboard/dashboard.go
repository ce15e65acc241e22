// Package dashboard is the read-only web dashboard each daemon serves on
// its admin address (docs/OPERATIONS.md, "Monitoring"): one embedded page
// (HTML, CSS and plain JavaScript, no build step) that polls GET
// /api/status every second and draws what it returns — summary figures,
// tables, and counters whose rate per second the page computes from
// successive polls.
//
// The daemon supplies a func() View; this package serves the page and the
// JSON. Nothing here writes: only GET (and HEAD) are answered, every other
// path is the daemon's (its mux answers 404 for unknown ones). A View
// carries names, addresses, counts and times only: no key material.
package dashboard

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"time"
)

// View is the daemon's state as GET /api/status returns it and the page
// shows it.
type View struct {
	// Kind is the daemon: router, capsuled or resolver.
	Kind string `json:"kind"`
	// Title heads the page (the daemon and its name).
	Title string `json:"title"`
	// Time is when the view was taken; the page computes rates from the
	// difference of two views' Time.
	Time time.Time `json:"time"`
	// Cards are the summary figures, in order.
	Cards []Card `json:"cards"`
	// Counters are monotonic totals; the page shows each with its rate
	// per second between polls and a short history.
	Counters []Counter `json:"counters"`
	// Tables are lists (faces, peers, FIB, capsules …), in order.
	Tables []Table `json:"tables"`
}

// Card is one summary figure.
type Card struct {
	ID    string `json:"id"`
	Label string `json:"label"`
	Value string `json:"value"`
	// Warn marks a figure an operator should look at (an expired
	// membership, a lagging replica).
	Warn bool `json:"warn,omitempty"`
}

// Counter is one monotonic total, a value of a Prometheus counter (summed
// over the labels not shown).
type Counter struct {
	// ID is unique within the view: "metric" or "metric/label-value".
	ID string `json:"id"`
	// Group heads the table the counter is shown in ("PDUs",
	// "Advertisement refusals" …).
	Group string  `json:"group"`
	Label string  `json:"label"`
	Value float64 `json:"value"`
}

// Table is a list the page shows as a table.
type Table struct {
	ID      string     `json:"id"`
	Title   string     `json:"title"`
	Columns []string   `json:"columns"`
	Rows    [][]string `json:"rows"`
	// Total is the number of rows there are when Rows holds only the
	// first ones (0: Rows is all of them).
	Total int `json:"total,omitempty"`
}

//go:embed assets
var assets embed.FS

// Paths the dashboard takes on a daemon's mux.
const (
	PathPage   = "/"
	PathAssets = "/dashboard/"
	PathStatus = "/api/status"
)

// Mount adds the dashboard to mux: GET / (the page), GET /dashboard/
// (its script and style sheet) and GET /api/status (build's View as
// JSON). Other methods on these paths are answered 405 by mux, or by the
// daemon's catch-all handler if it has one.
func Mount(mux *http.ServeMux, build func() View) {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(sub)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		secure(w)
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, sub, "index.html")
	})
	mux.Handle("GET "+PathAssets, http.StripPrefix("/dashboard", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" || r.URL.Path == "/index.html" {
			http.NotFound(w, r) // no directory listing, one address for the page
			return
		}
		secure(w)
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})))
	mux.HandleFunc("GET "+PathStatus, func(w http.ResponseWriter, _ *http.Request) {
		v := build()
		if v.Time.IsZero() {
			v.Time = time.Now()
		}
		secure(w)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(v)
	})
}

// Handler is a mux with the dashboard alone (unknown paths 404).
func Handler(build func() View) http.Handler {
	mux := http.NewServeMux()
	Mount(mux, build)
	return mux
}

// secure sets the headers that keep the page to itself: no script or
// style from elsewhere, no framing, no content sniffing.
func secure(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
}
