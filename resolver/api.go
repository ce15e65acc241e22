package resolver

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/gdpnet/gdpnet/pdu"
)

// MediaType is the content type of one record's bytes on the HTTP API.
const MediaType = "application/vnd.gdpnet.location-record+cbor"

// SetMediaType is the content type of a record set (PROTOCOL.md §6.7):
// every location of a name.
const SetMediaType = "application/vnd.gdpnet.location-record-set+cbor"

// Handler serves the resolver's read-only HTTP API (deploy it on
// localhost; docs/OPERATIONS.md §4):
//
//	GET /lookup/NAME   every current location of NAME (one record per
//	                   router holding it): a record set (SetMediaType);
//	                   with ?format=json a JSON array of views, newest
//	                   first; a client that accepts only MediaType gets the
//	                   newest record alone. 404 when not found.
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
	var all []*Record
	if r.URL.Query().Get("cache") == "no" {
		all, err = s.Inner().LookupAll(r.Context(), name)
	} else {
		all, err = s.LookupAll(r.Context(), name)
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
		views := make([]View, len(all))
		for i, rec := range all {
			views[i] = ViewOf(rec)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(views)
		return
	}
	if accept := r.Header.Get("Accept"); strings.Contains(accept, MediaType) && !strings.Contains(accept, SetMediaType) {
		w.Header().Set("Content-Type", MediaType)
		_, _ = w.Write(all[0].Bytes())
		return
	}
	b, err := MarshalSet(all)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", SetMediaType)
	_, _ = w.Write(b)
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
