package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/internal/fuzzseed"
)

// FuzzRequestBodies runs the gateway's request-body decoding (docs/GATEWAY.md
// §3: an append's JSON record or NDJSON batch, a create, a KV put) over
// fuzzed bodies, everything the gateway checks before touching a writer.
// Nothing may panic; a refused body gets a 4xx with the JSON error body and
// is counted; an accepted append is 1..max_batch_records records of at most
// a record's size.
func FuzzRequestBodies(f *testing.F) {
	for _, s := range []string{
		`{"data":"hello"}`,
		`{"data_base64":"aGVsbG8="}`,
		"{\"data\":\"a\"}\n{\"data_base64\":\"Yg==\"}\n",
		`{"owner":"alice","writer":"w","servers":["s1","s2","s3"],"w":2,"description":"d"}`,
		`{"value":"v"}`,
		`{"value_base64":"dg=="}`,
		`{"data":"x","data_base64":"eA=="}`,
		`{"data": `,
	} {
		fuzzseed.Add(f, byte(0), []byte(s))
		fuzzseed.Add(f, byte(1), []byte(s))
	}
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		f.Fatal(err)
	}
	s := &Server{m: m, log: zap.NewNop()}
	c := Config{MaxBody: 64 << 10, MaxBatchRecords: 20}.withDefaults()
	s.cfg.Store(&c)
	ctypes := []string{"application/json", "application/x-ndjson", "", "text/plain", "application/x-ndjson; charset=utf-8"}
	f.Fuzz(func(t *testing.T, ct byte, body []byte) {
		before := rejected(t, reg)
		w := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/v1/capsules/x/records", bytes.NewReader(body))
		if typ := ctypes[int(ct)%len(ctypes)]; typ != "" {
			r.Header.Set("Content-Type", typ)
		}
		recs, ok := s.parseRecords(w, r)
		if ok {
			if w.Body.Len() != 0 || len(recs) == 0 || len(recs) > c.MaxBatchRecords {
				t.Fatalf("accepted %d records, answer %q", len(recs), w.Body.Bytes())
			}
			for _, d := range recs {
				if len(d) > wire.MaxRecordData {
					t.Fatalf("accepted a record of %d bytes", len(d))
				}
			}
		} else {
			var e apiError
			if w.Code < 400 || w.Code >= 500 || json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Reason == "" || e.Error == "" {
				t.Fatalf("refusal %d %q", w.Code, w.Body.Bytes())
			}
			if rejected(t, reg) != before+1 {
				t.Fatal("refusal not counted")
			}
		}
		var in createIn
		if decodeStrict(body, &in) == nil {
			var again createIn
			b, _ := json.Marshal(in)
			if err := decodeStrict(b, &again); err != nil {
				t.Fatalf("re-decode of %s: %v", b, err)
			}
		}
		var kvIn kvValueIn
		if decodeStrict(body, &kvIn) == nil {
			_, _ = recordIn{Data: kvIn.Value, DataBase64: kvIn.ValueBase64}.bytes()
		}
		if w.Code == http.StatusOK && !ok {
			t.Fatal("refused with 200")
		}
	})
}

// rejected sums gdp_gateway_rejected_total over its reasons.
func rejected(t testing.TB, reg *prometheus.Registry) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == "gdp_gateway_rejected_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}
