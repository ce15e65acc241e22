package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/gateway"
	"github.com/gdpnet/gdpnet/pdu"
)

type kvJSON struct {
	Key     string  `json:"key"`
	Value   *string `json:"value"`
	Seqno   uint64  `json:"seqno"`
	Deleted bool    `json:"deleted"`
}

// TestCAAPIRoundTrip: the KV store with time travel and files with
// versions over HTTP, every exchange validated against the OpenAPI
// document.
func TestCAAPIRoundTrip(t *testing.T) {
	_, g, _ := setup(t, gateway.Config{})
	vt := g.validate(t, true)
	create := func(desc string) string {
		var out struct{ Capsule string }
		body := fmt.Sprintf(`{"owner":"alice","servers":[%q,%q],"w":2,"description":%q}`, g.servers[0], g.servers[1], desc)
		if code, b := g.do("POST", "/v1/capsules", "application/json", []byte(body), &out); code != http.StatusCreated {
			t.Fatalf("create: %d %s", code, b)
		}
		return out.Capsule
	}
	kvc := create("kv")
	put := func(k, v string) uint64 {
		t.Helper()
		var out struct {
			Seqno   uint64
			Durable bool
		}
		if code, b := g.do("PUT", "/v1/kv/"+kvc+"/keys/"+k, "application/json", []byte(fmt.Sprintf(`{"value":%q}`, v)), &out); code != 200 || !out.Durable {
			t.Fatalf("put %s: %d %s", k, code, b)
		}
		return out.Seqno
	}
	get := func(q string) (int, kvJSON) {
		t.Helper()
		var v kvJSON
		code, _ := g.do("GET", "/v1/kv/"+kvc+"/keys/"+q, "", nil, &v)
		return code, v
	}
	s1 := put("colour", "red")
	time.Sleep(20 * time.Millisecond)
	between := time.Now().UTC()
	time.Sleep(20 * time.Millisecond)
	s2 := put("colour", "green")
	put("shape", "round")
	var del struct{ Seqno uint64 }
	if code, b := g.do("DELETE", "/v1/kv/"+kvc+"/keys/colour", "", nil, &del); code != 200 || del.Seqno <= s2 {
		t.Fatalf("delete: %d %s", code, b)
	}
	if code, _ := get("colour"); code != 404 {
		t.Fatalf("deleted key: %d, want 404", code)
	}
	for q, want := range map[string]string{
		"colour?seqno=" + strconv.FormatUint(s1, 10):          "red",
		"colour?seqno=" + strconv.FormatUint(s2, 10):          "green",
		"colour?at=" + between.Format(time.RFC3339Nano):       "red",
		"colour?seqno=" + strconv.FormatUint(del.Seqno-1, 10): "green",
		"shape": "round",
	} {
		if code, v := get(q); code != 200 || v.Value == nil || *v.Value != want {
			t.Fatalf("get %s: %d %+v, want %q", q, code, v, want)
		}
	}
	var list struct{ Values []kvJSON }
	if code, b := g.do("GET", "/v1/kv/"+kvc+"/keys?seqno="+strconv.FormatUint(s2, 10), "", nil, &list); code != 200 || len(list.Values) != 1 || *list.Values[0].Value != "green" {
		t.Fatalf("list at s2: %d %s", code, b)
	}
	if code, b := g.do("GET", "/v1/kv/"+kvc+"/keys?prefix=sh", "", nil, &list); code != 200 || len(list.Values) != 1 || list.Values[0].Key != "shape" {
		t.Fatalf("list prefix: %d %s", code, b)
	}
	var hist struct{ Versions []kvJSON }
	if code, b := g.do("GET", "/v1/kv/"+kvc+"/history/colour", "", nil, &hist); code != 200 || len(hist.Versions) != 3 || !hist.Versions[2].Deleted || *hist.Versions[0].Value != "red" {
		t.Fatalf("history: %d %s", code, b)
	}
	vt.checkRq = false // bad on purpose
	if code, b := g.do("PUT", "/v1/kv/"+kvc+"/keys/x", "application/json", []byte(`{"value":1}`), nil); code != 400 {
		t.Fatalf("malformed value: %d %s", code, b)
	}
	vt.checkRq = true
	if code, _ := get("never-set"); code != 404 {
		t.Fatalf("unknown key: %d", code)
	}

	fc := create("files")
	var v1, v2 struct {
		Seqno uint64
		Size  uint64
		Time  string
	}
	if code, b := g.do("PUT", "/v1/files/"+fc+"/content/report.txt", "application/octet-stream", []byte("first draft\n"), &v1); code != 200 || v1.Size != 12 {
		t.Fatalf("put v1: %d %s", code, b)
	}
	if code, b := g.do("PUT", "/v1/files/"+fc+"/content/report.txt", "application/octet-stream", []byte("second draft, longer\n"), &v2); code != 200 || v2.Seqno <= v1.Seqno {
		t.Fatalf("put v2: %d %s", code, b)
	}
	if code, b := g.do("GET", "/v1/files/"+fc+"/content/report.txt", "", nil, nil); code != 200 || string(b) != "second draft, longer\n" {
		t.Fatalf("get: %d %q", code, b)
	}
	if code, b := g.do("GET", "/v1/files/"+fc+"/content/report.txt?seqno="+strconv.FormatUint(v1.Seqno, 10), "", nil, nil); code != 200 || string(b) != "first draft\n" {
		t.Fatalf("get old version: %d %q", code, b)
	}
	var log struct {
		Path     string
		Versions []struct {
			Path  string
			Seqno uint64
			Time  string
		}
	}
	if code, b := g.do("GET", "/v1/files/"+fc+"/versions/report.txt", "", nil, &log); code != 200 || len(log.Versions) != 2 || log.Versions[0].Seqno != v2.Seqno {
		t.Fatalf("versions: %d %s", code, b)
	}
	// The listing names the path as its versions and the PUT answers do,
	// with the times the PUTs answered (Session 19: "/report.txt" beside
	// "report.txt", and the PUT's time was the writer's clock after the
	// flush, not the record's).
	if log.Path != "report.txt" || log.Versions[0].Path != log.Path || log.Versions[0].Time != v2.Time || log.Versions[1].Time != v1.Time {
		t.Fatalf("versions %+v; want path report.txt, times %s and %s", log, v2.Time, v1.Time)
	}
	if code, _ := g.do("GET", "/v1/files/"+fc+"/content/missing.txt", "", nil, nil); code != 404 {
		t.Fatalf("missing file: %d", code)
	}
	// A KV operation or a plain record in the files capsule is refused
	// (409 files_capsule) and writes nothing: either, appended, made every
	// read of its files fail "not a files-capsule record", for good
	// (Session 19, found by hand).
	for _, bad := range []struct{ method, path, ctype, body string }{
		{"PUT", "/v1/kv/" + fc + "/keys/oops", "application/json", `{"value":"x"}`},
		{"DELETE", "/v1/kv/" + fc + "/keys/oops", "", ""},
		{"POST", "/v1/capsules/" + fc + "/records", "application/json", `{"data":"x"}`},
	} {
		if code, b := g.do(bad.method, bad.path, bad.ctype, []byte(bad.body), nil); code != 409 || !strings.Contains(string(b), `"files_capsule"`) {
			t.Fatalf("%s %s on a files capsule: %d %s, want 409 files_capsule", bad.method, bad.path, code, b)
		}
	}
	if code, b := g.do("GET", "/v1/files/"+fc+"/content/report.txt", "", nil, nil); code != 200 || string(b) != "second draft, longer\n" {
		t.Fatalf("the file after the refused writes: %d %q", code, b)
	}
	if vt.checked < 15 {
		t.Fatalf("only %d exchanges validated", vt.checked)
	}
}

// TestFilesSkippedReported (Session 21): records that are not files
// records, written into a files capsule with its writer key by another
// program (the gateway refuses them, the SDK does not), are passed over by
// the files reader and every file stays readable; the gateway now says how
// many it passed over: the X-Gdp-Skipped header of a file's content and
// versions, the versions' "skipped" field, and
// gdp_gateway_files_records_skipped_total. Before, nothing told the app.
func TestFilesSkippedReported(t *testing.T) {
	_, g, _ := setup(t, gateway.Config{})
	vt := g.validate(t, true)
	var created struct{ Capsule string }
	body := fmt.Sprintf(`{"owner":"alice","servers":[%q,%q],"w":2,"description":"files"}`, g.servers[0], g.servers[1])
	if code, b := g.do("POST", "/v1/capsules", "application/json", []byte(body), &created); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	fc := created.Capsule
	if code, b := g.do("PUT", "/v1/files/"+fc+"/content/report.txt", "application/octet-stream", []byte("draft\n"), nil); code != 200 {
		t.Fatalf("put: %d %s", code, b)
	}
	skipped := func(what, path string) string {
		t.Helper()
		req, _ := http.NewRequest("GET", g.http.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+g.token)
		resp, err := g.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", what, resp.StatusCode, b)
		}
		if what == "versions" {
			var out struct{ Skipped uint64 }
			if err := json.Unmarshal(b, &out); err != nil {
				t.Fatal(err)
			}
			if h := resp.Header.Get("X-Gdp-Skipped"); (out.Skipped == 0) != (h == "") || (h != "" && strconv.FormatUint(out.Skipped, 10) != h) {
				t.Fatalf("versions: skipped field %d, header %q: want the same count", out.Skipped, h)
			}
		} else if string(b) != "draft\n" {
			t.Fatalf("content %q", b)
		}
		return resp.Header.Get("X-Gdp-Skipped")
	}
	if h := skipped("content", "/v1/files/"+fc+"/content/report.txt"); h != "" {
		t.Fatalf("X-Gdp-Skipped %q on a capsule of files only", h)
	}

	// Another program appends three plain records with the writer key.
	name, err := pdu.ParseName(fc)
	if err != nil {
		t.Fatal(err)
	}
	alice, err := g.ks.Load("alice")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wr, err := g.up.Caps().NewWriter(ctx, name, alice.Key, client.WriterOptions{Cadence: -1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := wr.Append(ctx, []byte(fmt.Sprintf("not a file %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := wr.Close(ctx); err != nil {
		t.Fatal(err)
	}
	before := g.metric("gdp_gateway_files_records_skipped_total", "")
	if h := skipped("content", "/v1/files/"+fc+"/content/report.txt"); h != "3" {
		t.Fatalf("content: X-Gdp-Skipped %q, want 3", h)
	}
	if h := skipped("versions", "/v1/files/"+fc+"/versions/report.txt"); h != "3" {
		t.Fatalf("versions: X-Gdp-Skipped %q, want 3", h)
	}
	if got := g.metric("gdp_gateway_files_records_skipped_total", ""); got != before+6 {
		t.Fatalf("gdp_gateway_files_records_skipped_total %v, want %v (3 for each of the two reads)", got, before+6)
	}
	if vt.checked < 5 {
		t.Fatalf("only %d exchanges validated against the OpenAPI document", vt.checked)
	}
}
