package gateway_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/gorilla/websocket"

	"github.com/gdpnet/gdpnet/gateway"
)

// spec is the shipped OpenAPI document, loaded and validated by
// kin-openapi, with a router that finds each request's operation.
type spec struct {
	doc    *openapi3.T
	router routers.Router
}

func loadSpec(t *testing.T, serverURL string) *spec {
	t.Helper()
	b, err := os.ReadFile("../docs/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, gateway.OpenAPI) {
		t.Fatal("docs/openapi.json differs from gateway/openapi.json (the document the gateway serves)")
	}
	doc, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the OpenAPI document is not valid: %v", err)
	}
	doc.Servers = openapi3.Servers{{URL: serverURL}}
	r, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &spec{doc: doc, router: r}
}

func init() {
	openapi3filter.RegisterBodyDecoder("application/x-ndjson", func(r io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
		b, err := io.ReadAll(r)
		return string(b), err
	})
}

// validatingTransport checks every request against the document (unless
// it is deliberately bad) and every response the gateway gives.
type validatingTransport struct {
	t       *testing.T
	spec    *spec
	checkRq bool
	checked int
}

func (v *validatingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := context.Background()
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	route, params, err := v.spec.router.FindRoute(req)
	if err != nil {
		if v.checkRq {
			v.t.Errorf("%s %s: not in the OpenAPI document: %v", req.Method, req.URL.Path, err)
		}
		return http.DefaultTransport.RoundTrip(req) // a deliberately unknown endpoint
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	if v.checkRq {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			v.t.Errorf("%s %s: request does not match the document: %v", req.Method, req.URL.Path, err)
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	rb, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(rb))
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true}}
	out.SetBodyBytes(rb)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		v.t.Errorf("%s %s → %d: response does not match the document: %v\n%s", req.Method, req.URL.Path, resp.StatusCode, err, rb)
	}
	v.checked++
	return resp, nil
}

// validate routes g's client through the document's checks.
func (g *gw) validate(t *testing.T, requests bool) *validatingTransport {
	vt := &validatingTransport{t: t, spec: loadSpec(t, g.http.URL), checkRq: requests}
	g.client = &http.Client{Transport: vt}
	return vt
}

type recordJSON struct {
	Seqno      uint64  `json:"seqno"`
	Time       string  `json:"time"`
	Hash       string  `json:"hash"`
	Data       *string `json:"data"`
	DataBase64 string  `json:"data_base64"`
}

type rangeJSON struct {
	Records []recordJSON `json:"records"`
	Next    uint64       `json:"next"`
	More    bool         `json:"more"`
}

type appendJSON struct {
	First, Last uint64
	Count       int
	Durable     bool
}

// setup is one router, two capsule servers and a gateway, and a capsule
// created through the gateway.
func setup(t *testing.T, cfg gateway.Config) (*world, *gw, string) {
	w := newWorld(t)
	r := w.router("r")
	s1, s2 := w.replica(r, "s1"), w.replica(r, "s2")
	g := w.gateway(cfg, r)
	var created struct {
		Capsule string `json:"capsule"`
		W       int    `json:"w"`
	}
	body := fmt.Sprintf(`{"owner":"alice","servers":[%q,%q],"w":2,"description":"gateway test"}`, s1.Name, s2.Name)
	if code, b := g.do("POST", "/v1/capsules", "application/json", []byte(body), &created); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	if created.W != 2 {
		t.Fatalf("created %+v", created)
	}
	g.servers = []string{s1.Name.String(), s2.Name.String()}
	return w, g, created.Capsule
}

// subscribe opens a WebSocket subscription through g's TCP handler.
func (g *gw) subscribe(t testing.TB, c string, from uint64) *websocket.Conn {
	t.Helper()
	u := strings.Replace(g.http.URL, "http://", "ws://", 1) + fmt.Sprintf("/v1/capsules/%s/subscribe?from=%d", c, from)
	conn, resp, err := websocket.DefaultDialer.Dial(u, http.Header{"Authorization": {"Bearer " + g.token}})
	if err != nil {
		t.Fatalf("subscribe: %v (%v)", err, resp)
	}
	return conn
}

type subMsg struct {
	Type  string  `json:"type"`
	From  uint64  `json:"from"`
	Seqno uint64  `json:"seqno"`
	Data  *string `json:"data"`
	Error string  `json:"error"`
}

// TestAPIRoundTrip drives every endpoint through a client whose requests
// and responses are validated against the shipped OpenAPI document by
// kin-openapi, and checks what comes back.
func TestAPIRoundTrip(t *testing.T) {
	_, g, c := setup(t, gateway.Config{})
	vt := g.validate(t, true)

	var st struct {
		Router     string `json:"router"`
		Reattached int    `json:"reattached"`
	}
	if code, b := g.do("GET", "/v1/status", "", nil, &st); code != 200 || st.Router == "" {
		t.Fatalf("status: %d %s", code, b)
	}
	if code, b := g.do("GET", "/openapi.json", "", nil, nil); code != 200 || !bytes.Equal(b, gateway.OpenAPI) {
		t.Fatalf("openapi.json: %d", code)
	}
	var a appendJSON
	if code, b := g.do("POST", "/v1/capsules/"+c+"/records", "application/json", []byte(`{"data":"hello"}`), &a); code != 200 || a.First != 1 || a.Last != 1 || !a.Durable {
		t.Fatalf("append one: %d %s", code, b)
	}
	t1 := time.Now()
	time.Sleep(5 * time.Millisecond)
	bin := []byte{0, 1, 2, 0xff, 0xfe}
	nd := `{"data":"two"}` + "\n" + `{"data_base64":"` + base64.StdEncoding.EncodeToString(bin) + `"}` + "\n\n" + `{"data":"four"}` + "\n" + `{"data":"five"}`
	if code, b := g.do("POST", "/v1/capsules/"+c+"/records", "application/x-ndjson", []byte(nd), &a); code != 200 || a.First != 2 || a.Last != 5 || a.Count != 4 {
		t.Fatalf("append batch: %d %s", code, b)
	}
	var info struct {
		Head     uint64   `json:"head"`
		Writable bool     `json:"writable"`
		Replicas []string `json:"replicas"`
	}
	if code, b := g.do("GET", "/v1/capsules/"+c, "", nil, &info); code != 200 || info.Head != 5 || !info.Writable || len(info.Replicas) != 2 {
		t.Fatalf("info: %d %s", code, b)
	}
	var rg rangeJSON
	if code, b := g.do("GET", "/v1/capsules/"+c+"/records?from=1", "", nil, &rg); code != 200 || len(rg.Records) != 5 || rg.Next != 6 || rg.More {
		t.Fatalf("read: %d %s", code, b)
	}
	want := []string{"hello", "two", "", "four", "five"}
	for i, r := range rg.Records {
		if r.Seqno != uint64(i+1) {
			t.Fatalf("record %d has seqno %d", i, r.Seqno)
		}
		if i == 2 {
			if r.Data != nil || r.DataBase64 != base64.StdEncoding.EncodeToString(bin) {
				t.Fatalf("binary record: %+v", r)
			}
			continue
		}
		if r.Data == nil || *r.Data != want[i] {
			t.Fatalf("record %d: %+v", i+1, r)
		}
	}
	var one recordJSON
	if code, b := g.do("GET", "/v1/capsules/"+c+"/records/4", "", nil, &one); code != 200 || one.Seqno != 4 || *one.Data != "four" || one.Hash != rg.Records[3].Hash {
		t.Fatalf("read one: %d %s", code, b)
	}
	// The first record written at or after t1 is record 2.
	if code, b := g.do("GET", "/v1/capsules/"+c+"/records?at="+t1.UTC().Format(time.RFC3339Nano), "", nil, &rg); code != 200 || len(rg.Records) != 1 || rg.Records[0].Seqno != 2 {
		t.Fatalf("read at: %d %s", code, b)
	}
	// A range cut by max_read_records says where to go on.
	g.srv.Reload(gateway.Config{MaxReadRecords: 2})
	if code, b := g.do("GET", "/v1/capsules/"+c+"/records?from=2&to=5", "", nil, &rg); code != 200 || len(rg.Records) != 2 || rg.Next != 4 || !rg.More {
		t.Fatalf("read cut: %d %s", code, b)
	}
	g.srv.Reload(gateway.Config{})

	// A subscription from seqno 3 gets 3..5, then what is appended next.
	msgSchema := vt.spec.doc.Components.Schemas["SubscriptionMessage"].Value
	conn := g.subscribe(t, c, 3)
	defer conn.Close()
	next := func() subMsg {
		t.Helper()
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, b, err := conn.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		var v any
		_ = json.Unmarshal(b, &v)
		if err := msgSchema.VisitJSON(v); err != nil {
			t.Errorf("subscription message %s does not match the document: %v", b, err)
		}
		var m subMsg
		_ = json.Unmarshal(b, &m)
		return m
	}
	if m := next(); m.Type != "subscribed" || m.From != 3 {
		t.Fatalf("first message %+v", m)
	}
	for s := uint64(3); s <= 5; s++ {
		if m := next(); m.Type != "record" || m.Seqno != s {
			t.Fatalf("want record %d, got %+v", s, m)
		}
	}
	if code, b := g.do("POST", "/v1/capsules/"+c+"/records", "application/x-ndjson", []byte("{\"data\":\"six\"}\n{\"data\":\"seven\"}\n"), &a); code != 200 || a.First != 6 {
		t.Fatalf("append: %d %s", code, b)
	}
	for s := uint64(6); s <= 7; s++ {
		if m := next(); m.Type != "record" || m.Seqno != s {
			t.Fatalf("want record %d, got %+v", s, m)
		}
	}
	// A browser page (an Origin header) may not subscribe.
	u := strings.Replace(g.http.URL, "http://", "ws://", 1) + "/v1/capsules/" + c + "/subscribe"
	if _, resp, err := websocket.DefaultDialer.Dial(u, http.Header{"Authorization": {"Bearer " + g.token}, "Origin": {"http://evil.example"}}); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a subscribe with an Origin: %v %v, want 403", err, resp)
	}
	if vt.checked < 10 {
		t.Fatalf("only %d exchanges validated", vt.checked)
	}
	if got := g.metric("gdp_gateway_records_appended_total", ""); got != 7 {
		t.Fatalf("records appended metric %v, want 7", got)
	}
}

// TestSubscriptionFrameTooLarge: a subscriber has nothing to send but
// control frames; one that sends a 1 MiB message has its WebSocket closed
// with 1009 (message too big) before the gateway reads it whole, counted
// too_large. Before, the gateway read and kept every frame a subscriber
// sent, however large.
func TestSubscriptionFrameTooLarge(t *testing.T) {
	_, g, c := setup(t, gateway.Config{})
	conn := g.subscribe(t, c, 1)
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, b, err := conn.ReadMessage(); err != nil || !strings.Contains(string(b), "subscribed") {
		t.Fatalf("first message %s %v", b, err)
	}
	before := g.metric("gdp_gateway_rejected_total", "too_large")
	// The gateway may close while the frame is still being written (the
	// write then fails): either way the WebSocket ends.
	_ = conn.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte("x"), 1<<20))
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("after a 1 MiB frame the subscription is still open: %v", err)
		}
		if websocket.IsCloseError(err, websocket.CloseNormalClosure) {
			t.Fatalf("after a 1 MiB frame: %v, want 1009 or the connection cut", err)
		}
		break
	}
	deadline := time.Now().Add(5 * time.Second)
	for g.metric("gdp_gateway_rejected_total", "too_large") != before+1 {
		if time.Now().After(deadline) {
			t.Fatalf("rejected_total{too_large} %v, want %v", g.metric("gdp_gateway_rejected_total", "too_large"), before+1)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
