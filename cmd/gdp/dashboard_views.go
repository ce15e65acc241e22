package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gdpnet/gdpnet/capsuled"
	"github.com/gdpnet/gdpnet/internal/dashboard"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
)

// The views each daemon's dashboard shows (internal/dashboard serves them
// on the admin or metrics address; docs/OPERATIONS.md "Monitoring").

// dashFIBRows is how many FIB hops the router's dashboard lists (the
// admin API's /v1/routes has them all).
const dashFIBRows = 200

func dashAgo(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
}

func dashUntil(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := t.Sub(now).Round(time.Second)
	if d < 0 {
		return "expired " + (-d).String() + " ago"
	}
	return "in " + d.String()
}

func dashNum[T ~int | ~int64 | ~uint64 | ~uint32](v T) string { return fmt.Sprint(v) }

func dashYes(b bool) string {
	if b {
		return "yes"
	}
	return ""
}

// routerDashboard is the router's view: its summary, faces, peers, FIB,
// PDU and drop counters and advertisement refusals by reason.
func routerDashboard(r *router.Router, res *resolver.Service, g prometheus.Gatherer) func() dashboard.View {
	return func() dashboard.View {
		now := time.Now()
		s := r.Summary()
		m := dashboard.Gather(g)
		state := "forwarding"
		if s.Draining {
			state = "draining"
		}
		memberLeft := s.MemberExpiry.Sub(now)
		v := dashboard.View{Kind: "router", Title: "gdpnet router " + s.Name.String(), Time: now,
			Cards: []dashboard.Card{
				{ID: "name", Label: "router", Value: s.Name.String()},
				{ID: "domain", Label: "domain", Value: s.Domain.String()},
				{ID: "state", Label: "state", Value: state, Warn: s.Draining},
				{ID: "up", Label: "up for", Value: now.Sub(s.Started).Round(time.Second).String()},
				{ID: "member", Label: "membership ends", Value: dashUntil(now, s.MemberExpiry), Warn: memberLeft < 7*24*time.Hour},
				{ID: "fib", Label: "FIB names", Value: dashNum(s.FIBNames)},
				{ID: "faces", Label: "faces", Value: dashNum(s.Faces)},
				{ID: "peers", Label: "peer routers", Value: dashNum(s.Peers)},
				{ID: "waiting", Label: "waiting for the resolver", Value: dashNum(s.Waiting)},
			},
		}
		if res != nil {
			st := res.Status()
			v.Cards = append(v.Cards, dashboard.Card{ID: "resolver", Label: "resolver", Value: st.Mode},
				dashboard.Card{ID: "cache", Label: "resolver cache entries", Value: dashNum(st.CacheEntries)})
		}
		v.Counters = append(v.Counters,
			m.Counter("Traffic", "PDUs in", "gdp_router_pdus_in_total"),
			m.Counter("Traffic", "PDUs out", "gdp_router_pdus_out_total"),
			m.Counter("Traffic", "PDUs dropped", "gdp_router_pdus_dropped_total"),
		)
		for _, c := range m.By("Traffic", "gdp_router_advertisements_total", "result") {
			if c.Label == "accepted" {
				c.Label = "names advertised"
				v.Counters = append(v.Counters, c)
			}
		}
		v.Counters = append(v.Counters, m.By("Advertisement refusals by reason", "gdp_router_advertisements_total", "result", "accepted")...)
		v.Counters = append(v.Counters, m.By("Drops by reason", "gdp_router_pdus_dropped_total", "reason")...)
		v.Counters = append(v.Counters, m.By("Resolver lookups by result", "gdp_router_resolver_lookups_total", "result")...)
		v.Counters = append(v.Counters, m.By("Quota refusals by reason", "gdp_router_quota_refusals_total", "reason")...)

		faces := dashboard.Table{ID: "faces", Title: "Faces",
			Columns: []string{"face", "kind", "peer", "address", "since", "names", "rx PDUs", "tx PDUs", "drops", "queued"}}
		for _, f := range r.Faces() {
			faces.Rows = append(faces.Rows, []string{dashNum(f.ID), f.Kind, f.Peer.String(), f.Addr, dashAgo(now, f.Since), dashNum(f.Names),
				dashNum(f.RxPDUs), dashNum(f.TxPDUs), dashNum(f.Drops), dashNum(f.Queued)})
		}
		peers := dashboard.Table{ID: "peers", Title: "Peer routers", Columns: []string{"router", "face", "domain", "address", "upstream"}}
		for _, p := range r.Peers() {
			peers.Rows = append(peers.Rows, []string{p.Name.String(), dashNum(p.Face), p.Domain.String(), p.Addr, dashYes(p.Upstream)})
		}
		fib := dashboard.Table{ID: "fib", Title: "FIB", Columns: []string{"name", "face", "kind", "next hop", "cost", "origin", "expires"}}
		hops := 0
		for _, ri := range r.Routes(0, 0) {
			for _, h := range ri.Hops {
				hops++
				if len(fib.Rows) >= dashFIBRows {
					continue
				}
				exp := "never"
				if h.Expiry != nil {
					exp = dashUntil(now, *h.Expiry)
				}
				fib.Rows = append(fib.Rows, []string{ri.Name.String(), dashNum(h.Face), h.Kind, h.Peer.String(), dashNum(h.Cost), h.Origin, exp})
			}
		}
		if hops > len(fib.Rows) {
			fib.Total = hops
		}
		v.Tables = []dashboard.Table{faces, peers, fib}
		return v
	}
}

// capsuledDashboard is a capsule server's view: its capsules with their
// heads, each peer replica's head as last learnt and the lag.
func capsuledDashboard(srv *capsuled.Server, g prometheus.Gatherer) func() dashboard.View {
	return func() dashboard.View {
		now := time.Now()
		m := dashboard.Gather(g)
		caps := srv.Status()
		maxLag, lagging := capsuled.LagFigures(caps)
		unproven := capsuled.UnprovenReplicas(caps) // left out of the lag figures
		v := dashboard.View{Kind: "capsuled", Title: "gdpnet capsule server " + srv.Name().String(), Time: now,
			Cards: []dashboard.Card{
				{ID: "name", Label: "server", Value: srv.Name().String()},
				{ID: "capsules", Label: "capsules", Value: dashNum(len(caps))},
				{ID: "lagging", Label: "capsules with a lagging replica", Value: dashNum(lagging), Warn: lagging > 0},
				{ID: "maxlag", Label: "largest lag (records)", Value: dashNum(maxLag), Warn: maxLag > 0},
				{ID: "unproven", Label: "replicas with an unproven head", Value: dashNum(unproven), Warn: unproven > 0},
				{ID: "subscriptions", Label: "subscriptions", Value: strconv.FormatFloat(m.Total("gdp_capsuled_subscriptions"), 'f', -1, 64)},
				{ID: "syncing", Label: "capsules syncing now", Value: strconv.FormatFloat(m.Total("gdp_capsuled_sync_inflight"), 'f', -1, 64)},
			},
		}
		v.Counters = append(v.Counters,
			m.Counter("Records", "appended by writers", "gdp_capsuled_appended_records_total"),
			m.Counter("Records", "pulled from replicas", "gdp_capsuled_synced_records_total"),
			m.Counter("Records", "pushed to subscribers", "gdp_capsuled_pushes_total"),
			m.Counter("Records", "writer conflicts", "gdp_capsuled_writer_conflicts_total"),
		)
		v.Counters = append(v.Counters, m.By("Requests by operation", "gdp_capsuled_requests_total", "op")...)
		v.Counters = append(v.Counters, m.By("Anti-entropy errors by reason", "gdp_capsuled_sync_errors_total", "reason")...)
		v.Counters = append(v.Counters, m.By("Drops by reason", "gdp_capsuled_dropped_total", "reason")...)

		ct := dashboard.Table{ID: "capsules", Title: "Capsules",
			Columns: []string{"capsule", "description", "head", "newest known", "behind", "replicas", "w", "state"}}
		rt := dashboard.Table{ID: "replication", Title: "Replication (peer replicas' heads as last learnt)",
			Columns: []string{"capsule", "peer", "peer head", "behind", "heard", "state"}}
		for _, c := range caps {
			state := "in sync"
			switch {
			case c.Syncing:
				state = "syncing"
			case c.Suspect:
				state = "a peer did not answer"
			case c.Lag() > 0:
				state = "behind"
			}
			ct.Rows = append(ct.Rows, []string{c.Name.String(), c.Description, dashNum(c.Head), dashNum(c.Newest), dashNum(c.Lag()),
				dashNum(c.Replicas), dashNum(c.W), state})
			for _, p := range c.Peers {
				ps := "ok"
				switch {
				case p.Error != "":
					ps = p.Error
				case p.BackingOff:
					ps = "backing off"
				case p.Unproven:
					ps = "head not proven"
				case p.Seen.IsZero():
					ps = "not heard yet"
				}
				head, behind := "", ""
				if !p.Seen.IsZero() {
					head, behind = dashNum(p.Head), dashNum(p.Lag)
				}
				rt.Rows = append(rt.Rows, []string{c.Name.String(), p.Name.String(), head, behind, dashAgo(now, p.Seen), ps})
			}
		}
		v.Tables = []dashboard.Table{ct, rt}
		return v
	}
}

// resolverDashboard is a resolver node's view: its domain, DHT peers,
// published names and cache.
func resolverDashboard(svc *resolver.Service, self, domain pdu.Name, g prometheus.Gatherer) func() dashboard.View {
	return func() dashboard.View {
		now := time.Now()
		m := dashboard.Gather(g)
		st := svc.Status()
		v := dashboard.View{Kind: "resolver", Title: "gdpnet resolver " + self.String(), Time: now,
			Cards: []dashboard.Card{
				{ID: "name", Label: "resolver", Value: self.String()},
				{ID: "domain", Label: "domain", Value: domain.String()},
				{ID: "mode", Label: "mode", Value: st.Mode},
				{ID: "border", Label: "border (global tier)", Value: map[bool]string{true: "yes", false: "no"}[st.Border]},
				{ID: "peers", Label: "DHT peers", Value: dashNum(st.DomainPeers), Warn: st.Mode == "dht" && st.DomainPeers == 0},
				{ID: "admitted", Label: "peers admitted", Value: dashNum(st.Admitted)},
				{ID: "stored", Label: "names stored", Value: strconv.FormatFloat(m.Total("gdp_resolver_dht_stored_names"), 'f', -1, 64)},
				{ID: "published", Label: "names published", Value: dashNum(len(st.Published))},
				{ID: "cache", Label: "cache entries", Value: dashNum(st.CacheEntries)},
			},
		}
		if st.Border {
			v.Cards = append(v.Cards, dashboard.Card{ID: "global", Label: "global peers", Value: dashNum(st.GlobalPeers)})
		}
		v.Counters = append(v.Counters, m.By("Lookups by cache result", "gdp_resolver_cache_lookups_total", "result")...)
		v.Counters = append(v.Counters, m.By("DHT puts by result", "gdp_resolver_dht_puts_total", "result")...)
		v.Counters = append(v.Counters, m.By("Records refused by reason", "gdp_resolver_records_refused_total", "reason")...)
		v.Counters = append(v.Counters, m.By("Peer admissions by result", "gdp_resolver_peer_admissions_total", "result")...)

		pt := dashboard.Table{ID: "peers", Title: "DHT peers", Columns: []string{"peer ID", "member", "domain", "in table", "membership ends"}}
		if svc.Local != nil {
			for _, p := range svc.Local.Peers() {
				name, dom, end := "", "", ""
				if !p.Until.IsZero() {
					name, dom, end = p.Name.String(), p.Domain.String(), dashUntil(now, p.Until)
				}
				pt.Rows = append(pt.Rows, []string{p.ID, name, dom, dashYes(p.InTable), end})
			}
		}
		pub := dashboard.Table{ID: "published", Title: "Published names", Columns: []string{"name"}}
		for _, n := range st.Published {
			pub.Rows = append(pub.Rows, []string{n})
		}
		cache := dashboard.Table{ID: "cache", Title: "Cache", Columns: []string{"name", "router", "domain", "sequence", "expires"}}
		for _, rec := range svc.Entries() {
			rv := resolver.ViewOf(rec)
			cache.Rows = append(cache.Rows, []string{rv.Name, rv.Router, rv.Domain, dashNum(rv.Sequence), dashUntil(now, rv.Expiry)})
		}
		v.Tables = []dashboard.Table{pt, pub, cache}
		return v
	}
}
