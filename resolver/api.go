package resolver

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gdpnet/gdpnet/pdu"
)

// MediaType is the content type of a record's bytes on the HTTP API.
const MediaType = "application/vnd.gdpnet.location-record+cbor"

// Handler serves the resolver's read-only HTTP API (deploy it on
// localhost; docs/OPERATIONS.md §4):
//
//	GET /lookup/NAME   the record's signed bytes (MediaType), or its JSON
//	                   view with ?format=json; 404 when not found.
//	                   ?cache=no bypasses the cache.
//	GET /status        JSON: mode, peers, published names, cache entries.
//
// Clients (gdp lookup) verify the bytes themselves: the API is not trusted.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /lookup/{name}", s.serveLookup)
	mux.HandleFunc("GET /status", s.serveStatus)
	return mux
}

func (s *Service) serveLookup(w http.ResponseWriter, r *http.Request) {
	name, err := pdu.ParseName(r.PathValue("name"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var rec *Record
	if r.URL.Query().Get("cache") == "no" {
		rec, err = s.LookupUncached(r.Context(), name)
	} else {
		rec, err = s.Lookup(r.Context(), name)
	}
	switch {
	case errors.Is(err, ErrNotFound):
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if r.URL.Query().Get("format") == "json" {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(ViewOf(rec))
		return
	}
	w.Header().Set("Content-Type", MediaType)
	_, _ = w.Write(rec.Bytes())
}

// Status is what GET /status returns.
type Status struct {
	Mode         string   `json:"mode"`
	Border       bool     `json:"border"`
	DomainPeers  int      `json:"domain_peers"`
	GlobalPeers  int      `json:"global_peers,omitempty"`
	Admitted     int      `json:"admitted_peers"`
	Addrs        []string `json:"addrs,omitempty"`
	GlobalAddrs  []string `json:"global_addrs,omitempty"`
	Published    []string `json:"published"`
	CacheEntries int      `json:"cache_entries"`
}

// Status describes the service.
func (s *Service) Status() Status {
	st := Status{Mode: "static", Published: []string{}, CacheEntries: len(s.Entries())}
	if s.Local != nil {
		st.Mode = "dht"
		st.DomainPeers, st.Admitted, st.Addrs = s.Local.PeerCount(), s.Local.AdmittedCount(), s.Local.Addrs()
		for _, r := range s.Local.Published() {
			st.Published = append(st.Published, r.Name.String())
		}
	}
	if s.Global != nil {
		st.Border = true
		st.GlobalPeers, st.GlobalAddrs = s.Global.PeerCount(), s.Global.Addrs()
	}
	return st
}

func (s *Service) serveStatus(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(s.Status())
}
