package gateway_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/gateway"
)

// TestReadEdges (Session 14): the read endpoints at their edges — a
// bad from is 400; from = to reads that one record; a range past the
// head and a time after the last record answer 200 with no records (not
// an error, not a crash); a record of a capsule nobody holds is 404; with
// the overlay gone a read is an error, never a 200 with what was read so
// far nor a 404 "no such record" (mutants: the from error ignored, to <
// from made <=, the empty range's next taken from records[-1], the 404 of
// a read at a time past the end taken as an error, readOne's reader and
// read errors ignored, readRange's read error ignored).
func TestReadEdges(t *testing.T) {
	w := newWorld(t)
	r := w.router("r")
	s1, s2 := w.replica(r, "s1"), w.replica(r, "s2")
	g := w.gateway(gateway.Config{RequestTimeout: 2 * time.Second}, r)
	// Two capsules: each read below with the overlay gone has a cached
	// reader of its own.
	create := func(desc string) string {
		var created struct {
			Capsule string `json:"capsule"`
		}
		body := fmt.Sprintf(`{"owner":"alice","servers":[%q,%q],"w":2,"description":%q}`, s1.Name, s2.Name, desc)
		if code, b := g.do("POST", "/v1/capsules", "application/json", []byte(body), &created); code != http.StatusCreated {
			t.Fatalf("create: %d %s", code, b)
		}
		if code, b := g.do("POST", "/v1/capsules/"+created.Capsule+"/records", "application/x-ndjson", []byte("{\"data\":\"one\"}\n{\"data\":\"two\"}\n{\"data\":\"three\"}\n"), nil); code != 200 {
			t.Fatalf("append: %d %s", code, b)
		}
		return created.Capsule
	}
	c, c2 := create("read edges"), create("read edges, one record")
	if code, b := g.do("GET", "/v1/capsules/"+c2+"/records/1", "", nil, nil); code != 200 {
		t.Fatalf("read one: %d %s", code, b)
	}
	after := time.Now().Add(time.Minute).UTC().Format(time.RFC3339Nano)
	type rangeOut struct {
		Records []struct {
			Seqno uint64 `json:"seqno"`
		} `json:"records"`
		Next uint64 `json:"next"`
		More bool   `json:"more"`
	}
	rec := "/v1/capsules/" + c + "/records"
	for _, tt := range []struct {
		name, q string
		code    int
		seqnos  string
		next    uint64
	}{
		{"from not a number", "?from=x", 400, "", 0},
		{"from = to", "?from=2&to=2", 200, "2", 3},
		{"to before from", "?from=3&to=2", 400, "", 0},
		{"past the head", "?from=10", 200, "", 10},
		{"at a time after the last record", "?at=" + after, 200, "", 1},
	} {
		var out rangeOut
		code, b := g.do("GET", rec+tt.q, "", nil, &out)
		if code != tt.code {
			t.Fatalf("%s: %d %s, want %d", tt.name, code, b, tt.code)
		}
		if code != 200 {
			continue
		}
		var got []string
		for _, r := range out.Records {
			got = append(got, fmt.Sprint(r.Seqno))
		}
		if strings.Join(got, ",") != tt.seqnos || out.Next != tt.next || out.More {
			t.Fatalf("%s: records %v, next %d, more %v; want [%s], next %d", tt.name, got, out.Next, out.More, tt.seqnos, tt.next)
		}
	}
	unknown := strings.Repeat("A", len(c))
	if code, b := g.do("GET", "/v1/capsules/"+unknown+"/records/1", "", nil, nil); code != http.StatusNotFound {
		t.Fatalf("a record of a capsule nobody holds: %d %s, want 404", code, b)
	}
	// The overlay gone: the cached reader's reads fail.
	r.kill()
	if code, b := g.do("GET", rec+"?from=1", "", nil, nil); code == 200 {
		t.Fatalf("a range read with the overlay gone: 200 %s, want an error", b)
	}
	if code, b := g.do("GET", "/v1/capsules/"+c2+"/records/2", "", nil, nil); code == 200 || code == http.StatusNotFound {
		t.Fatalf("a record read with the overlay gone: %d %s, want an error other than no such record", code, b)
	}
}
