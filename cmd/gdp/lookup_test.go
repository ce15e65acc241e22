package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/resolver"
)

// TestLookupShowsEveryLocation (issue 10 item 11): a name held at three
// routers (a server attached to each) has three records; the resolver
// API's /lookup/NAME serves all three, and `gdp lookup` verifies and
// prints all three, newest first (before, both showed one).
func TestLookupShowsEveryLocation(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	dom, err := certs.NewIdentity(certs.KindDomain, "lookup domain")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := certs.NewIdentity(certs.KindServer, "replicated server")
	if err != nil {
		t.Fatal(err)
	}
	svc, err := resolver.Open(context.Background(), resolver.Config{}, resolver.NodeCredentials{Certs: certs.NewVerifier(dom.Meta)}, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	routers := map[string]string{} // router name -> its address
	for i := range 3 {
		rid, err := certs.NewIdentity(certs.KindRouter, fmt.Sprintf("router %d", i))
		if err != nil {
			t.Fatal(err)
		}
		m, err := certs.IssueMember(dom, rid.Name, now.Add(-time.Minute), now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		rt, err := certs.IssueRtCert(srv, rid.Name, now.Add(-time.Minute), now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		chain := &certs.Chain{Target: srv.Meta, RtCert: rt, Router: rid.Meta, Member: m, Domain: dom.Meta}
		addr := fmt.Sprintf("127.0.0.1:%d", 8100+i)
		rec, err := resolver.NewLocation(rid.Key, srv.Name, chain, []string{addr}, resolver.NextSequence(), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.Publish(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
		routers[rid.Name.String()] = addr
	}
	api := httptest.NewServer(svc.Handler())
	defer api.Close()
	domainPath := filepath.Join(dir, "domain.meta")
	if err := os.WriteFile(domainPath, certs.Armor(certs.PEMMetadata, dom.Meta.Marshal()), 0o644); err != nil {
		t.Fatal(err)
	}

	// The API: a record set of three, and a JSON array of three.
	resp, err := http.Get(api.URL + "/lookup/" + srv.Name.String())
	if err != nil {
		t.Fatal(err)
	}
	var body []byte
	body, err = readAllClose(resp)
	if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != resolver.SetMediaType {
		t.Fatalf("GET /lookup: %s %q %v", resp.Status, resp.Header.Get("Content-Type"), err)
	}
	if set, err := resolver.ParseSet(body); err != nil || len(set) != 3 {
		t.Fatalf("GET /lookup: a set of %d records (%v), want 3", len(set), err)
	}
	resp, err = http.Get(api.URL + "/lookup/" + srv.Name.String() + "?format=json&cache=no")
	if err != nil {
		t.Fatal(err)
	}
	var views []resolver.View
	err = json.NewDecoder(resp.Body).Decode(&views)
	resp.Body.Close()
	if err != nil || len(views) != 3 {
		t.Fatalf("GET /lookup?format=json: %d views (%v), want 3", len(views), err)
	}
	// A client that accepts only one record gets the newest.
	req, _ := http.NewRequest(http.MethodGet, api.URL+"/lookup/"+srv.Name.String(), nil)
	req.Header.Set("Accept", resolver.MediaType)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	body, err = readAllClose(resp)
	if rec, perr := resolver.ParseRecord(body); err != nil || perr != nil || rec.Sequence != views[0].Sequence {
		t.Fatalf("single-record answer: %v %v", err, perr)
	}

	// gdp lookup prints and verifies all three.
	resetCommand("lookup")
	out := runGDP(t, "lookup", "--api", api.URL, "--trust", domainPath, srv.Name.String())
	for name, addr := range routers {
		if !strings.Contains(out, "router    "+name) || !strings.Contains(out, addr) {
			t.Errorf("gdp lookup does not show router %s at %s:\n%s", name, addr, out)
		}
	}
	if !strings.Contains(out, "location 3 of 3") || !strings.Contains(out, "verified: 3 location(s)") {
		t.Errorf("gdp lookup output:\n%s", out)
	}
	resetCommand("lookup")
	out = runGDP(t, "lookup", "--api", api.URL, "--trust", domainPath, "--json", srv.Name.String())
	views = nil
	if err := json.Unmarshal([]byte(out), &views); err != nil || len(views) != 3 {
		t.Fatalf("gdp lookup --json: %d views (%v):\n%s", len(views), err, out)
	}
	for i := 1; i < len(views); i++ {
		if views[i].Sequence > views[i-1].Sequence {
			t.Errorf("gdp lookup --json is not newest first: %d before %d", views[i-1].Sequence, views[i].Sequence)
		}
	}
}

func readAllClose(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}
