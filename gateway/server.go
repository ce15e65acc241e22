package gateway

import (
	"bufio"
	"context"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/caapi/fs"
	"github.com/gdpnet/gdpnet/caapi/kv"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

// OpenAPI is the OpenAPI 3 document of the gateway's HTTP API, served at
// /openapi.json and shipped as docs/openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

// Config holds the gateway's limits. Zero values take the defaults in the
// comments (the same as `gdp gateway`'s YAML, deploy/gateway.yaml).
type Config struct {
	// MaxBody bounds one request body in bytes (413 beyond). Default 8 MiB.
	MaxBody int64
	// MaxBatchRecords bounds the records of one NDJSON append (413
	// beyond). Default 10,000.
	MaxBatchRecords int
	// MaxReadRecords bounds the records one range read returns; a longer
	// range is cut there and says where to go on (next). Default 1,000.
	MaxReadRecords int
	// MaxSubscriptions bounds the WebSocket subscriptions open at once
	// (503 beyond). Default 256.
	MaxSubscriptions int
	// RequestTimeout bounds the overlay work of one request. Default 30s.
	RequestTimeout time.Duration
	// MaxReaders bounds the capsule readers kept between requests (one per
	// capsule read, holding its verified heartbeat). Beyond it the least
	// recently used is dropped, counted in
	// gdp_gateway_reader_evictions_total; the next read of that capsule
	// opens a new one (one more round trip). It also bounds the small
	// per-capsule marks (encrypted or not; the newest KV seqno this
	// gateway wrote, which a KV read waits for). Default 1,024.
	MaxReaders int
	// MaxWriters bounds the capsule writers kept open between requests
	// (one per capsule written, each holding its capsule's writer lock, a
	// file descriptor). Beyond it the least recently used is closed:
	// flushed, its lock released, counted in
	// gdp_gateway_writer_evictions_total{reason="max_writers"}; the next
	// write of that capsule opens a new one (two more round trips). A
	// writer in use is never closed under its request, so while more
	// requests than MaxWriters write distinct capsules at once the excess
	// is closed as they finish. Default 256.
	MaxWriters int
	// MaxKVStores bounds the KV stores kept between requests (one per KV
	// capsule read, each following its capsule with a subscription and
	// holding its index in memory); beyond it the least recently used is
	// closed (gdp_gateway_kv_store_evictions_total{reason="max_kv_stores"}).
	// Default 64.
	MaxKVStores int
	// IdleClose closes a writer or KV store unused this long (reason
	// "idle"): a gateway that wrote a capsule once keeps neither its lock
	// nor its subscription. Default 5m.
	IdleClose time.Duration
	// DefaultServers and DefaultW place capsules created without a
	// "servers" field. Default none (then "servers" is required).
	DefaultServers []pdu.Name
	DefaultW       int
	// DefaultOwner is the keystore alias that owns capsules created
	// without an "owner" field. Default none (then "owner" is required).
	DefaultOwner string
	// AdCertLifetime is the AdCert lifetime of created capsules. Default 72h.
	AdCertLifetime time.Duration
}

func (c Config) withDefaults() Config {
	if c.MaxBody <= 0 {
		c.MaxBody = 8 << 20
	}
	if c.MaxBatchRecords <= 0 {
		c.MaxBatchRecords = 10000
	}
	if c.MaxReadRecords <= 0 {
		c.MaxReadRecords = 1000
	}
	if c.MaxSubscriptions <= 0 {
		c.MaxSubscriptions = 256
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 30 * time.Second
	}
	if c.MaxReaders <= 0 {
		c.MaxReaders = 1024
	}
	if c.MaxWriters <= 0 {
		c.MaxWriters = 256
	}
	if c.MaxKVStores <= 0 {
		c.MaxKVStores = 64
	}
	if c.IdleClose <= 0 {
		c.IdleClose = 5 * time.Minute
	}
	if c.AdCertLifetime <= 0 {
		c.AdCertLifetime = 72 * time.Hour
	}
	return c
}

// Keys is where the gateway finds the keys it acts with: the user's
// keystore (*certs.Keystore).
type Keys interface {
	Load(alias string) (*certs.Identity, error)
	List() ([]certs.Entry, error)
}

// Deps is what a Server runs on.
type Deps struct {
	Uplink   *Uplink
	Keys     Keys
	Logger   *zap.Logger
	Registry prometheus.Registerer
	// LockWriter, when set, is taken before the gateway writes a capsule
	// and held while its writer is open (gdp's per-capsule flock beside
	// the keystore), so a `gdp capsule append` of the same capsule on this
	// machine is refused instead of forking the capsule.
	LockWriter func(c pdu.Name) (unlock func(), err error)
}

// Server serves the HTTP API over an uplink.
type Server struct {
	liveMu sync.Mutex
	live   map[*client.Subscription]struct{} // for Renew on re-attachment
	cfg    atomic.Pointer[Config]
	up     *Uplink
	keys   Keys
	log    *zap.Logger
	logLim *logging.Limiter // failed requests: one line per reason and interval
	lock   func(pdu.Name) (func(), error)
	m      *metrics

	token atomic.Pointer[[]byte]

	mu          sync.Mutex
	writers     map[pdu.Name]*capWriter // bounded by MaxWriters and IdleClose (writers.go)
	evicting    int                     // writers chosen to be closed, not yet closed
	openWriters atomic.Int64
	readers     *lru.Cache[pdu.Name, *client.Reader] // bounded by MaxReaders; compare-and-drop under mu
	kvs         map[pdu.Name]*kvEntry                // bounded by MaxKVStores and IdleClose (kvstores.go)
	marks       *lru.Cache[pdu.Name, capMarks]       // bounded by MaxReaders
	subs        atomic.Int64
	sweepDone   chan struct{} // the idle sweeper ended
	sweepKick   chan struct{} // a reload: look again now (IdleClose may be shorter)

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup // subscriptions; joined only under mu while !closing
	closing bool           // under mu: Close has begun
}

// New makes a server; serve its Handler on the listeners of listen.go.
func New(cfg Config, d Deps) (*Server, error) {
	if d.Uplink == nil || d.Keys == nil {
		return nil, errors.New("gateway: uplink and keys are required")
	}
	log := d.Logger
	if log == nil {
		log = zap.NewNop()
	}
	reg := d.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	s := &Server{up: d.Uplink, keys: d.Keys, log: log, logLim: logging.NewLimiter(0, 0, nil), lock: d.LockWriter, m: m,
		writers: map[pdu.Name]*capWriter{}, kvs: map[pdu.Name]*kvEntry{},
		live: map[*client.Subscription]struct{}{}, sweepDone: make(chan struct{}), sweepKick: make(chan struct{}, 1)}
	c := cfg.withDefaults()
	s.cfg.Store(&c)
	if s.readers, err = lru.New[pdu.Name, *client.Reader](c.MaxReaders); err != nil {
		return nil, fmt.Errorf("gateway: reader cache: %w", err)
	}
	if s.marks, err = lru.New[pdu.Name, capMarks](c.MaxReaders); err != nil {
		return nil, fmt.Errorf("gateway: capsule marks: %w", err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.sweep()
	d.Uplink.OnReattach(func(router pdu.Name, after time.Duration) {
		m.reattached.Inc()
		m.outage.Set(after.Seconds())
		// Subscriptions resume through the new router at once, not at
		// their next lease renewal (up to Lease/3 later).
		s.liveMu.Lock()
		for sub := range s.live {
			sub.Renew()
		}
		s.liveMu.Unlock()
	})
	return s, nil
}

// Reload puts new limits in force (SIGHUP); requests in progress keep the
// ones they started with. It returns once the writers and KV stores
// beyond lowered bounds (and not in use) are closed.
func (s *Server) Reload(cfg Config) {
	c := cfg.withDefaults()
	s.cfg.Store(&c)
	s.mu.Lock()
	n := s.readers.Resize(c.MaxReaders)
	s.marks.Resize(c.MaxReaders)
	s.m.readers.Set(float64(s.readers.Len()))
	s.mu.Unlock()
	s.m.readerEvictions.Add(float64(n))
	s.shrinkWriters()
	s.shrinkKVs()
	select {
	case s.sweepKick <- struct{}{}:
	default:
	}
}

// sweep closes idle writers and KV stores until Close, looking every
// quarter of IdleClose (at most every minute, at least every 10 ms: an
// idle_close of a few nanoseconds must not make it spin).
func (s *Server) sweep() {
	defer close(s.sweepDone)
	for {
		every := max(min(s.conf().IdleClose/4, time.Minute), 10*time.Millisecond)
		t := time.NewTimer(every)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-s.sweepKick:
		case <-t.C:
		}
		t.Stop()
		s.closeIdleWriters()
		s.closeIdleKVs()
	}
}

// SetToken sets the bearer token TCP clients must present (nil: the TCP
// handler refuses every request).
func (s *Server) SetToken(tok []byte) {
	t := append([]byte(nil), tok...)
	s.token.Store(&t)
}

func (s *Server) conf() *Config { return s.cfg.Load() }

// Close ends the subscriptions and closes every open writer (flushing
// what it holds) within ctx.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	<-s.sweepDone
	s.mu.Lock()
	var sts []*kv.Store
	for _, e := range s.kvs {
		sts = append(sts, e.st)
	}
	s.kvs = map[pdu.Name]*kvEntry{}
	s.m.kvStores.Set(0)
	s.mu.Unlock()
	closeStores(sts)
	return s.closeAllWriters(ctx)
}

// Handler is the API. With token it wants "Authorization: Bearer TOKEN"
// on every request (the TCP listener); without, it trusts its caller (the
// unix socket, whose mode 0600 admits the user only).
func (s *Server) Handler(token bool) http.Handler {
	mux := http.NewServeMux()
	route := func(pattern, name string, h http.HandlerFunc) {
		mux.Handle(pattern, s.instrument(name, h))
	}
	route("GET /openapi.json", "openapi", s.openapi)
	route("GET /v1/status", "status", s.status)
	route("POST /v1/capsules", "create", s.create)
	route("GET /v1/capsules/{capsule}", "info", s.info)
	route("POST /v1/capsules/{capsule}/records", "append", s.appendRecords)
	route("GET /v1/capsules/{capsule}/records", "read", s.readRange)
	route("GET /v1/capsules/{capsule}/records/{seqno}", "read_one", s.readOne)
	route("GET /v1/capsules/{capsule}/subscribe", "subscribe", s.subscribe)
	route("POST /v1/sealed/{capsule}/records", "sealed_append", s.sealedAppend)
	route("GET /v1/sealed/{capsule}/records", "sealed_read", s.sealedRead)
	route("GET /v1/sealed/{capsule}/records/{seqno}", "sealed_read_one", s.sealedReadOne)
	route("GET /v1/sealed/{capsule}/readers", "sealed_readers", s.sealedReaders)
	route("PUT /v1/sealed/{capsule}/readers/{reader}", "sealed_add_reader", s.sealedChangeReader(true))
	route("DELETE /v1/sealed/{capsule}/readers/{reader}", "sealed_remove_reader", s.sealedChangeReader(false))
	route("PUT /v1/kv/{capsule}/keys/{key...}", "kv_put", s.kvPut)
	route("DELETE /v1/kv/{capsule}/keys/{key...}", "kv_delete", s.kvDelete)
	route("GET /v1/kv/{capsule}/keys/{key...}", "kv_get", s.kvGet)
	route("GET /v1/kv/{capsule}/keys", "kv_list", s.kvList)
	route("GET /v1/kv/{capsule}/history/{key...}", "kv_history", s.kvHistory)
	route("PUT /v1/files/{capsule}/content/{path...}", "file_put", s.filePut)
	route("GET /v1/files/{capsule}/content/{path...}", "file_get", s.fileGet)
	route("GET /v1/files/{capsule}/versions/{path...}", "file_versions", s.fileLog)
	route("/", "unknown", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, http.StatusNotFound, "no_such_endpoint", fmt.Errorf("no endpoint %s %s (see /openapi.json)", r.Method, r.URL.Path))
	})
	if !token {
		return mux
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gdp gateway"`)
			s.fail(w, http.StatusUnauthorized, "unauthorized", errors.New("missing or wrong token: send Authorization: Bearer <the token file's content>"))
			s.m.requests.WithLabelValues("unauthorized", "401").Inc()
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (s *Server) authorized(r *http.Request) bool {
	tp := s.token.Load()
	if tp == nil || len(*tp) == 0 {
		return false
	}
	got, ok := bearer(r)
	return ok && subtle.ConstantTimeCompare([]byte(got), *tp) == 1
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const p = "Bearer "
	if len(h) > len(p) && h[:len(p)] == p {
		return h[len(p):], true
	}
	// Browsers' WebSocket API cannot set headers: the token may come as
	// the access_token query parameter of a subscription (RFC 6750 §2.3).
	if t := r.URL.Query().Get("access_token"); t != "" {
		return t, true
	}
	return "", false
}

// statusWriter records the status code for the request metric.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack hands the connection to the WebSocket upgrader; the request
// counts as 101.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("the connection cannot be taken over")
	}
	if w.code == 0 {
		w.code = http.StatusSwitchingProtocols
	}
	return h.Hijack()
}

func (s *Server) instrument(name string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		h(sw, r)
		code := sw.code
		if code == 0 {
			code = http.StatusOK
		}
		s.m.requests.WithLabelValues(name, strconv.Itoa(code)).Inc()
	})
}

// apiError is every error body.
type apiError struct {
	Error  string `json:"error"`
	Reason string `json:"reason"`
}

// fail answers with code and a JSON error body; a 4xx is counted under
// reason in gdp_gateway_rejected_total. A 5xx is logged, one line per
// reason and interval (a client repeating a request the overlay cannot
// answer would otherwise write a line each time); gdp_gateway_requests_total
// counts every one by code.
func (s *Server) fail(w http.ResponseWriter, code int, reason string, err error) {
	if code >= 400 && code < 500 {
		s.m.rejected.WithLabelValues(reason).Inc()
	} else {
		s.logLim.Warn(s.log, reason, "request failed", logging.Reason(reason), zap.Error(err))
	}
	writeJSON(w, code, apiError{Error: err.Error(), Reason: reason})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

func (s *Server) openapi(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(OpenAPI)
}

// statusJSON is GET /v1/status.
type statusJSON struct {
	Identity      string  `json:"identity"`
	Router        string  `json:"router"`
	AttachedSince string  `json:"attached_since"`
	Reattached    uint64  `json:"reattached"`
	LastOutage    float64 `json:"last_outage_seconds"`
	Subscriptions int64   `json:"subscriptions"`
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	st := s.up.Status()
	writeJSON(w, http.StatusOK, statusJSON{Identity: s.up.Client().Name().String(), Router: st.Router.String(),
		AttachedSince: st.Since.UTC().Format(time.RFC3339Nano), Reattached: st.Reattached,
		LastOutage: st.LastOutage.Seconds(), Subscriptions: s.subs.Load()})
}

// overlayError maps an error of the overlay to an HTTP answer.
func (s *Server) overlayError(w http.ResponseWriter, what string, err error) {
	var nak *client.NAKError
	switch {
	case errors.As(err, &nak) && nak.Code == pdu.CodeNoRoute:
		s.fail(w, http.StatusNotFound, "unknown_capsule", fmt.Errorf("%s: %w", what, err))
	case isStatus(err, 404):
		s.fail(w, http.StatusNotFound, "unknown_capsule", fmt.Errorf("%s: %w", what, err))
	case errors.Is(err, client.ErrNoAnswer), errors.Is(err, client.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		s.fail(w, http.StatusGatewayTimeout, "no_answer", fmt.Errorf("%s: %w", what, err))
	case errors.Is(err, client.ErrWriterConflict):
		s.fail(w, http.StatusConflict, "writer_conflict", fmt.Errorf("%s: %w", what, err))
	case errors.Is(err, fs.ErrNotFS):
		// A verified record the writer wrote that is not a file record:
		// the caller named a capsule of records, KV or sealed records.
		s.fail(w, http.StatusConflict, "not_files", fmt.Errorf("%s: %w: this capsule holds other records than files; keep files in a capsule of their own (POST /v1/capsules)", what, err))
	default:
		s.fail(w, http.StatusBadGateway, "overlay_error", fmt.Errorf("%s: %w", what, err))
	}
}
