package router

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gdpnet/gdpnet/pdu"
)

// Summary is the router's state as GET /v1/status returns it.
type Summary struct {
	Name     pdu.Name  `json:"name"`
	Domain   pdu.Name  `json:"domain"`
	Started  time.Time `json:"started"`
	FIBNames int       `json:"fib_names"`
	Faces    int       `json:"faces"`
	Peers    int       `json:"peers"`
	Waiting  int       `json:"resolve_waiting"`
	Draining bool      `json:"draining"`
	Addrs    []string  `json:"addrs,omitempty"`
	// MemberExpiry is when the router's domain membership ends (and with
	// it every route through the router): renew and reload before.
	MemberExpiry time.Time `json:"member_expiry"`
	// Now is the router's clock when it answered: `gdp doctor --remote`
	// compares it with its own (certificates are checked against clocks).
	Now time.Time `json:"now"`
	// UDPBuffers are the host's net.core.rmem_max and net.core.wmem_max in
	// bytes (absent where unreadable): the kernel caps the tunnel's socket
	// buffers at these (docs/OPERATIONS.md §2).
	UDPBuffers map[string]int64 `json:"udp_buffers,omitempty"`
	// Tick is the housekeeping period (the YAML's tick), e.g. "50ms".
	Tick string `json:"tick"`
	// PublishPending is the location record jobs (publish or withdraw)
	// accepted and not yet done: waiting, backing off or in flight (the
	// gdp_router_publish_pending gauge). 0: every advertised name has
	// reached the resolver.
	PublishPending int `json:"publish_pending"`
}

// hostUDPBuffers reads net.core.rmem_max and wmem_max (Linux).
func hostUDPBuffers() map[string]int64 {
	out := map[string]int64{}
	for _, k := range []string{"rmem_max", "wmem_max"} {
		b, err := os.ReadFile("/proc/sys/net/core/" + k)
		if err != nil {
			continue
		}
		if v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// RouteInfo is one FIB entry as the admin API shows it.
type RouteInfo struct {
	Name pdu.Name  `json:"name"`
	Hops []HopInfo `json:"hops"`
}

// HopInfo is one next hop of a RouteInfo.
type HopInfo struct {
	Face   uint64     `json:"face"`
	Peer   pdu.Name   `json:"peer"`
	Kind   string     `json:"kind"`
	Cost   uint32     `json:"cost"`
	Origin string     `json:"origin"`
	Router pdu.Name   `json:"router"`
	Expiry *time.Time `json:"expiry,omitempty"`
}

// ResolverCache is what GET /v1/resolver/cache returns: routes learned from
// the resolver and the negative cache.
type ResolverCache struct {
	Learned  []RouteInfo     `json:"learned"`
	Negative []NegativeEntry `json:"negative"`
}

// Summary returns the router's state.
func (r *Router) Summary() Summary {
	own := r.own.Load()
	return Summary{
		Name: r.name, Domain: own.domain.Name(), Started: r.started, FIBNames: r.fib.Len(),
		Faces: r.faceCount(), Peers: len(r.Peers()), Waiting: r.resolve.waiting(),
		Draining: r.draining.Load(), Addrs: r.addrs, MemberExpiry: own.member.NotAfter,
		Now: r.now(), UDPBuffers: hostUDPBuffers(), Tick: r.tickEvery.String(),
		PublishPending: r.PublishPending(),
	}
}

// Routes lists up to limit FIB entries (0: all) whose origin matches
// (0: any), sorted by name.
func (r *Router) Routes(limit int, origin Origin) []RouteInfo {
	var out []RouteInfo
	r.fib.Walk(func(n pdu.Name, hops []Hop) bool {
		ri := RouteInfo{Name: n}
		for _, h := range hops {
			if origin != 0 && h.Origin != origin {
				continue
			}
			hi := HopInfo{Face: h.Face.id, Peer: h.Face.peer, Kind: h.Face.kind.String(), Cost: h.Cost,
				Origin: h.Origin.String(), Router: h.Router}
			if !h.Expiry.IsZero() {
				e := h.Expiry
				hi.Expiry = &e
			}
			ri.Hops = append(ri.Hops, hi)
		}
		if len(ri.Hops) > 0 {
			out = append(out, ri)
		}
		return limit == 0 || len(out) < limit
	})
	sort.Slice(out, func(i, j int) bool { return string(out[i].Name[:]) < string(out[j].Name[:]) })
	return out
}

// AdminHandler serves the admin API:
//
//	GET /v1/status          Summary
//	GET /v1/routes?limit=N  []RouteInfo (default limit 1000; 0 = all)
//	GET /v1/routes?name=X   the entry for one name
//	GET /v1/faces           []FaceInfo
//	GET /v1/peers           []PeerInfo
//	GET /v1/resolver/cache  ResolverCache
//	GET /metrics            Prometheus
//	/debug/pprof/           Go profiling
//
// It is meant for a loopback or otherwise protected address: it has no
// authentication of its own.
func (r *Router) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, r.Summary()) })
	mux.HandleFunc("GET /v1/routes", func(w http.ResponseWriter, q *http.Request) {
		if s := q.URL.Query().Get("name"); s != "" {
			n, err := pdu.ParseName(s)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			var out []RouteInfo
			for _, ri := range r.Routes(0, 0) {
				if ri.Name == n {
					out = append(out, ri)
				}
			}
			writeJSON(w, out)
			return
		}
		limit := 1000
		if s := q.URL.Query().Get("limit"); s != "" {
			v, err := strconv.Atoi(s)
			if err != nil || v < 0 {
				http.Error(w, "limit: want a non-negative integer", http.StatusBadRequest)
				return
			}
			limit = v
		}
		writeJSON(w, r.Routes(limit, 0))
	})
	mux.HandleFunc("GET /v1/faces", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, r.Faces()) })
	mux.HandleFunc("GET /v1/peers", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, r.Peers()) })
	mux.HandleFunc("GET /v1/resolver/cache", func(w http.ResponseWriter, _ *http.Request) {
		rc := ResolverCache{Learned: r.Routes(0, OriginResolver)}
		if r.resolve != nil {
			rc.Negative = r.resolve.negatives()
		}
		writeJSON(w, rc)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
