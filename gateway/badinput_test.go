package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/caapi/kv"
	"github.com/gdpnet/gdpnet/gateway"
)

// TestBadInput: every kind of bad request gets its 4xx with a JSON error
// body that matches the document, is counted under its reason, and
// writes nothing.
func TestBadInput(t *testing.T) {
	_, g, c := setup(t, gateway.Config{MaxBody: 128 << 10, MaxBatchRecords: 100})
	g.validate(t, false) // the requests are bad on purpose; the answers are checked
	if code, b := g.do("POST", "/v1/capsules/"+c+"/records", "application/json", []byte(`{"data":"kept"}`), nil); code != 200 {
		t.Fatalf("append: %d %s", code, b)
	}
	unknown := "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	big := `{"data":"` + strings.Repeat("x", 56001) + `"}`
	var batch strings.Builder
	for range 101 {
		batch.WriteString("{\"data\":\"r\"}\n")
	}
	rec := "/v1/capsules/" + c + "/records"
	cases := []struct {
		name, method, path, ctype, body string
		code                            int
		reason                          string
		says                            string // the error says this (what to do), when set
	}{
		{"truncated JSON", "POST", rec, "application/json", `{"data": `, 400, "malformed_json", ""},
		{"not an object", "POST", rec, "application/json", `"hello"`, 400, "malformed_json", ""},
		{"unknown field", "POST", rec, "application/json", `{"dta":"x"}`, 400, "malformed_json", ""},
		{"unknown field beside data", "POST", rec, "application/json", `{"data":"x","seqno":7}`, 400, "malformed_json", ""},
		{"both data fields", "POST", rec, "application/json", `{"data":"x","data_base64":"eA=="}`, 400, "malformed_json", ""},
		{"no data", "POST", rec, "application/json", `{}`, 400, "malformed_json", ""},
		{"bad base64", "POST", rec, "application/json", `{"data_base64":"!!"}`, 400, "malformed_json", ""},
		{"trailing garbage", "POST", rec, "application/json", `{"data":"x"} {"data":"y"}`, 400, "malformed_json", ""},
		{"batch with one bad line", "POST", rec, "application/x-ndjson", "{\"data\":\"a\"}\n{\"data\":\"b\"}\n{\"data\":\n", 400, "malformed_json", ""},
		{"empty batch", "POST", rec, "application/x-ndjson", "\n\n", 400, "bad_request", ""},
		{"record over 56,000 bytes", "POST", rec, "application/json", big, 413, "too_large", ""},
		{"body over max_body", "POST", rec, "application/x-ndjson", strings.Repeat("{\"data\":\"0123456789012345678901234567890123456789\"}\n", 3000), 413, "too_large", ""},
		{"batch over max_batch_records", "POST", rec, "application/x-ndjson", batch.String(), 413, "too_large", ""},
		{"wrong content type", "POST", rec, "text/plain", `{"data":"x"}`, 415, "bad_request", ""},
		{"curl -d's content type", "POST", rec, "application/x-www-form-urlencoded", `{"data":"x"}`, 415, "bad_request", "add -H 'Content-Type: application/json'"},
		{"file put to a capsule of records", "PUT", "/v1/files/" + c + "/content/a.txt", "application/octet-stream", "bytes", 409, "not_files", "a capsule of their own"},
		{"file read from a capsule of records", "GET", "/v1/files/" + c + "/content/a.txt", "", "", 409, "not_files", "a capsule of their own"},
		{"file versions of a capsule of records", "GET", "/v1/files/" + c + "/versions/a.txt", "", "", 409, "not_files", "a capsule of their own"},
		{"KV value over its bound", "PUT", "/v1/kv/" + c + "/keys/big", "application/json", `{"value":"` + strings.Repeat("v", kv.MaxValue+1) + `"}`, 413, "too_large", "keep larger data in a file"},
		{"KV delete of a key over its bound", "DELETE", "/v1/kv/" + c + "/keys/" + strings.Repeat("k", kv.MaxKey+1), "", "", 413, "too_large", "a key holds at most"},
		{"KV key over its bound", "PUT", "/v1/kv/" + c + "/keys/" + strings.Repeat("k", kv.MaxKey+1), "application/json", `{"value":"v"}`, 413, "too_large", "a key holds at most"},
		{"create: a server nobody serves", "POST", "/v1/capsules", "application/json", `{"owner":"alice","servers":["` + unknown + `"]}`, 404, "unknown_server", "running capsule server"},
		{"unknown capsule append", "POST", "/v1/capsules/" + unknown + "/records", "application/json", `{"data":"x"}`, 404, "unknown_capsule", ""},
		{"unknown capsule read", "GET", "/v1/capsules/" + unknown + "/records", "", "", 404, "unknown_capsule", ""},
		{"unknown capsule info", "GET", "/v1/capsules/" + unknown, "", "", 404, "unknown_capsule", ""},
		{"bad capsule name", "GET", "/v1/capsules/not-a-name/records", "", "", 400, "bad_request", ""},
		{"seqno 0", "GET", rec + "/0", "", "", 400, "bad_request", ""},
		{"seqno not written", "GET", rec + "/99", "", "", 404, "no_such_record", ""},
		{"from after to", "GET", rec + "?from=5&to=2", "", "", 400, "bad_request", ""},
		{"bad time", "GET", rec + "?at=yesterday", "", "", 400, "bad_request", ""},
		{"create: malformed", "POST", "/v1/capsules", "application/json", `{"owner":`, 400, "malformed_json", ""},
		{"create: unknown owner", "POST", "/v1/capsules", "application/json", `{"owner":"mallory","servers":["` + unknown + `"]}`, 400, "no_key", ""},
		{"create: no servers", "POST", "/v1/capsules", "application/json", `{"owner":"alice"}`, 400, "bad_request", ""},
		{"subscribe without upgrade", "GET", "/v1/capsules/" + c + "/subscribe", "", "", 400, "bad_request", ""},
		{"no such endpoint", "GET", "/v2/whatever", "", "", 404, "no_such_endpoint", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := g.metric("gdp_gateway_rejected_total", tc.reason)
			code, b := g.do(tc.method, tc.path, tc.ctype, []byte(tc.body), nil)
			var e struct {
				Error  string `json:"error"`
				Reason string `json:"reason"`
			}
			if err := json.Unmarshal(b, &e); err != nil || code != tc.code || e.Reason != tc.reason || e.Error == "" {
				t.Fatalf("got %d %s, want %d with reason %s", code, b, tc.code, tc.reason)
			}
			if !strings.Contains(e.Error, tc.says) {
				t.Fatalf("the error %q does not say %q", e.Error, tc.says)
			}
			if after := g.metric("gdp_gateway_rejected_total", tc.reason); after != before+1 {
				t.Fatalf("gdp_gateway_rejected_total{reason=%q} went %v → %v, want +1", tc.reason, before, after)
			}
		})
	}
	// Nothing was written by any of them: the head is still 1.
	var info struct {
		Head uint64 `json:"head"`
	}
	if code, b := g.do("GET", "/v1/capsules/"+c, "", nil, &info); code != 200 || info.Head != 1 {
		t.Fatalf("after the bad requests: %d %s (head %d, want 1)", code, b, info.Head)
	}
	if got := g.metric("gdp_gateway_records_appended_total", ""); got != 1 {
		t.Fatalf("records appended %v, want 1", got)
	}
}

// TestTokenAndSocket: the TCP listener wants the token on every request
// (a missing or wrong one is 401, counted); the unix socket is mode 0600
// and wants none; a non-loopback TCP address is refused unless forced.
func TestTokenAndSocket(t *testing.T) {
	w := newWorld(t)
	r := w.router("r")
	g := w.gateway(gateway.Config{}, r)

	ln, err := gateway.ListenTCP("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	tcp := &http.Server{Handler: g.srv.Handler(true)}
	go func() { _ = tcp.Serve(ln) }()
	defer tcp.Close()
	get := func(c *http.Client, url, token string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e struct{ Reason string }
		if resp.StatusCode == 401 {
			if json.NewDecoder(resp.Body).Decode(&e) != nil || e.Reason != "unauthorized" || resp.Header.Get("WWW-Authenticate") == "" {
				t.Fatalf("401 without its JSON body or WWW-Authenticate")
			}
		}
		return resp.StatusCode
	}
	base := "http://" + ln.Addr().String() + "/v1/status"
	before := g.metric("gdp_gateway_rejected_total", "unauthorized")
	if code := get(http.DefaultClient, base, ""); code != 401 {
		t.Fatalf("no token: %d, want 401", code)
	}
	if code := get(http.DefaultClient, base, "wrong-token-wrong-token"); code != 401 {
		t.Fatalf("wrong token: %d, want 401", code)
	}
	if code := get(http.DefaultClient, base, g.token+"x"); code != 401 {
		t.Fatalf("token with a suffix: %d, want 401", code)
	}
	if code := get(http.DefaultClient, base, g.token); code != 200 {
		t.Fatalf("right token: %d, want 200", code)
	}
	if got := g.metric("gdp_gateway_rejected_total", "unauthorized"); got != before+3 {
		t.Fatalf("unauthorized counted %v times, want 3", got-before)
	}

	sock := filepath.Join(t.TempDir(), "run", "gateway.sock")
	uln, err := gateway.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(sock)
	if err != nil || st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket %s: mode %v, %v; want a socket with 0600", sock, st.Mode(), err)
	}
	us := &http.Server{Handler: g.srv.Handler(false)}
	go func() { _ = us.Serve(uln) }()
	uc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	if code := get(uc, "http://gateway/v1/status", ""); code != 200 {
		t.Fatalf("unix socket without a token: %d, want 200", code)
	}
	// A second gateway on the same socket is refused; once the first is
	// gone its stale socket is replaced.
	if _, err := gateway.ListenUnix(sock); err == nil {
		t.Fatal("a second listener took a live socket")
	}
	_ = us.Close()
	time.Sleep(50 * time.Millisecond)
	uln2, err := gateway.ListenUnix(sock)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	_ = uln2.Close()

	for _, a := range []string{"0.0.0.0:8039", "[::]:8039", "192.168.1.10:8039", "example.com:8039", ":8039"} {
		if _, err := gateway.ListenTCP(a, false); !errors.Is(err, gateway.ErrNotLoopback) {
			t.Errorf("listen %s: %v, want ErrNotLoopback", a, err)
		}
		if err := gateway.CheckLoopback(a, true); err != nil {
			t.Errorf("forced %s: %v", a, err)
		}
	}
	for _, a := range []string{"127.0.0.1:8039", "[::1]:8039", "localhost:8039", "127.0.0.2:1"} {
		if err := gateway.CheckLoopback(a, false); err != nil {
			t.Errorf("%s refused: %v", a, err)
		}
	}
}

// TestTokenFile: a token file is created 0600 with a fresh token; one
// that others may read is refused.
func TestTokenFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "gateway.token")
	tok, err := gateway.LoadOrCreateToken(p)
	if err != nil || len(tok) != 64 {
		t.Fatalf("token %q, %v", tok, err)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v", st.Mode())
	}
	again, err := gateway.LoadOrCreateToken(p)
	if err != nil || string(again) != string(tok) {
		t.Fatalf("reload: %q %v", again, err)
	}
	_ = os.Chmod(p, 0o644)
	if _, err := gateway.LoadOrCreateToken(p); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a readable token file: %v", err)
	}
}
