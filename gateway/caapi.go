package gateway

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gdpnet/gdpnet/caapi/fs"
	"github.com/gdpnet/gdpnet/caapi/kv"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
)

// The Common Access APIs over HTTP: a key–value store with time travel
// (caapi/kv) and files with versions (caapi/fs), each on a capsule the
// gateway created (POST /v1/capsules) and holds the writer key of.

// kvValueIn is PUT /v1/kv/{capsule}/keys/{key}: exactly one of value
// (UTF-8 text) and value_base64.
type kvValueIn struct {
	Value       *string `json:"value"`
	ValueBase64 *string `json:"value_base64"`
}

// kvValueOut is one value, as of a point of the log.
type kvValueOut = kv.JSONValue

func toKV(v kv.Value) kvValueOut { return v.JSON() }

type kvWriteOut struct {
	Key     string `json:"key"`
	Seqno   uint64 `json:"seqno"`
	Durable bool   `json:"durable"`
}

// at reads ?seqno=N or ?at=RFC3339 (default: the newest).
func (s *Server) at(w http.ResponseWriter, r *http.Request) (kv.At, bool) {
	q := r.URL.Query()
	if v := q.Get("seqno"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			s.fail(w, http.StatusBadRequest, "bad_request", fmt.Errorf("seqno %q: want a number from 1", v))
			return kv.Latest, false
		}
		return kv.AtSeqno(n), true
	}
	if v := q.Get("at"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			s.fail(w, http.StatusBadRequest, "bad_request", fmt.Errorf("at: %w (want RFC 3339)", err))
			return kv.Latest, false
		}
		return kv.AtTime(t), true
	}
	return kv.Latest, true
}

func (s *Server) kvError(w http.ResponseWriter, what string, err error) {
	switch {
	case errors.Is(err, kv.ErrNotFound):
		s.fail(w, http.StatusNotFound, "no_such_key", fmt.Errorf("%s: %w", what, err))
	case errors.Is(err, kv.ErrNotIndexed):
		s.fail(w, http.StatusNotFound, "no_such_key", fmt.Errorf("%s: %w", what, err))
	default:
		s.overlayError(w, what, err)
	}
}

// kvSizeOK answers 413 too_large for a key or value over caapi/kv's
// bounds (one record each), before a writer opens: it was a 502 from the
// writer (Session 19).
func (s *Server) kvSizeOK(w http.ResponseWriter, key string, val []byte) bool {
	switch {
	case len(key) > kv.MaxKey:
		s.fail(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Errorf("key of %d bytes: a key holds at most %d", len(key), kv.MaxKey))
	case len(val) > kv.MaxValue:
		s.fail(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Errorf("value of %d bytes: a KV value holds at most %d; keep larger data in a file (PUT /v1/files/…) and its path in the value", len(val), kv.MaxValue))
	default:
		return true
	}
	return false
}

func (s *Server) kvPut(w http.ResponseWriter, r *http.Request) {
	name, ok := s.capsuleName(w, r)
	if !ok {
		return
	}
	key := r.PathValue("key")
	if key == "" {
		s.fail(w, http.StatusBadRequest, "bad_request", errors.New("an empty key"))
		return
	}
	b, ok := s.readBody(w, r)
	if !ok {
		return
	}
	var in kvValueIn
	if err := decodeStrict(b, &in); err != nil {
		s.fail(w, http.StatusBadRequest, "malformed_json", fmt.Errorf("request body: %w", err))
		return
	}
	val, err := recordIn{Data: in.Value, DataBase64: in.ValueBase64}.bytes()
	if err != nil {
		s.fail(w, http.StatusBadRequest, "malformed_json", fmt.Errorf("request body: %w", err))
		return
	}
	if !s.kvSizeOK(w, key, val) {
		return
	}
	ctx, cancel := s.reqCtx(r)
	defer cancel()
	cw, ok := s.writerOf(ctx, w, name, kvWriter)
	if !ok {
		return
	}
	defer s.release(cw)
	seq, err := cw.kv.Put(ctx, key, val)
	var d bool
	if err == nil {
		var dur client.Durability
		dur, err = cw.kv.Flush(ctx)
		d = dur.Met
	}
	if err != nil {
		s.dropWriter(name, cw)
		s.overlayError(w, "kv put", err)
		return
	}
	s.noteKV(name, seq)
	s.m.appended.Inc()
	writeJSON(w, http.StatusOK, kvWriteOut{Key: key, Seqno: seq, Durable: d})
}

func (s *Server) kvDelete(w http.ResponseWriter, r *http.Request) {
	name, ok := s.capsuleName(w, r)
	if !ok {
		return
	}
	key := r.PathValue("key")
	if !s.kvSizeOK(w, key, nil) {
		return
	}
	ctx, cancel := s.reqCtx(r)
	defer cancel()
	cw, ok := s.writerOf(ctx, w, name, kvWriter)
	if !ok {
		return
	}
	defer s.release(cw)
	seq, err := cw.kv.Delete(ctx, key)
	d := true
	if err == nil && seq > 0 {
		var dur client.Durability
		dur, err = cw.kv.Flush(ctx)
		d = dur.Met
	}
	if err != nil {
		s.dropWriter(name, cw)
		s.overlayError(w, "kv delete", err)
		return
	}
	if seq == 0 {
		s.fail(w, http.StatusNotFound, "no_such_key", fmt.Errorf("key %q has no value to delete", key))
		return
	}
	s.noteKV(name, seq)
	s.m.appended.Inc()
	writeJSON(w, http.StatusOK, kvWriteOut{Key: key, Seqno: seq, Durable: d})
}

func (s *Server) kvGet(w http.ResponseWriter, r *http.Request) {
	name, ok := s.capsuleName(w, r)
	if !ok {
		return
	}
	at, ok := s.at(w, r)
	if !ok {
		return
	}
	ctx, cancel := s.reqCtx(r)
	defer cancel()
	st, done, err := s.kvStore(ctx, name)
	if err != nil {
		s.overlayError(w, "kv", err)
		return
	}
	defer done()
	v, err := st.GetAt(ctx, r.PathValue("key"), at)
	if err != nil {
		s.kvError(w, "kv get", err)
		return
	}
	writeJSON(w, http.StatusOK, toKV(v))
}

type kvListOut struct {
	Values []kvValueOut `json:"values"`
}

func (s *Server) kvList(w http.ResponseWriter, r *http.Request) {
	name, ok := s.capsuleName(w, r)
	if !ok {
		return
	}
	at, ok := s.at(w, r)
	if !ok {
		return
	}
	ctx, cancel := s.reqCtx(r)
	defer cancel()
	st, done, err := s.kvStore(ctx, name)
	if err != nil {
		s.overlayError(w, "kv", err)
		return
	}
	defer done()
	vs, err := st.ListAt(ctx, r.URL.Query().Get("prefix"), at)
	if err != nil {
		s.kvError(w, "kv list", err)
		return
	}
	out := kvListOut{Values: []kvValueOut{}}
	for _, v := range vs {
		out.Values = append(out.Values, toKV(v))
	}
	writeJSON(w, http.StatusOK, out)
}

type kvHistoryOut struct {
	Key      string       `json:"key"`
	Versions []kvValueOut `json:"versions"`
}

func (s *Server) kvHistory(w http.ResponseWriter, r *http.Request) {
	name, ok := s.capsuleName(w, r)
	if !ok {
		return
	}
	ctx, cancel := s.reqCtx(r)
	defer cancel()
	st, done, err := s.kvStore(ctx, name)
	if err != nil {
		s.overlayError(w, "kv", err)
		return
	}
	defer done()
	key := r.PathValue("key")
	vs, err := st.History(ctx, key)
	if err != nil {
		s.kvError(w, "kv history", err)
		return
	}
	out := kvHistoryOut{Key: key, Versions: []kvValueOut{}}
	for _, v := range vs {
		out.Versions = append(out.Versions, toKV(v))
	}
	writeJSON(w, http.StatusOK, out)
}

// fileVersionOut is one version of a file.
type fileVersionOut struct {
	Path   string `json:"path"`
	Seqno  uint64 `json:"seqno"`
	Time   string `json:"time"`
	Size   uint64 `json:"size"`
	SHA256 string `json:"sha256"`
	// Removed marks a version that removed the path.
	Removed bool `json:"removed,omitempty"`
}

func toFileVersion(v *fs.Version) fileVersionOut {
	o := fileVersionOut{Path: v.Path, Seqno: v.Seqno, Time: v.Time.UTC().Format(time.RFC3339Nano), SHA256: hex.EncodeToString(v.SHA256)}
	if v.Manifest != nil {
		o.Size = v.Size
		o.Removed = v.Type == fs.TypeRemoved
	}
	return o
}

func (s *Server) fileError(w http.ResponseWriter, what string, err error) {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		s.fail(w, http.StatusNotFound, "no_such_file", fmt.Errorf("%s: %w", what, err))
	case errors.Is(err, fs.ErrBadPath), errors.Is(err, fs.ErrIsDir):
		s.fail(w, http.StatusBadRequest, "bad_request", fmt.Errorf("%s: %w", what, err))
	default:
		s.overlayError(w, what, err)
	}
}

func (s *Server) filePut(w http.ResponseWriter, r *http.Request) {
	name, ok := s.capsuleName(w, r)
	if !ok {
		return
	}
	b, ok := s.readBody(w, r)
	if !ok {
		return
	}
	p := "/" + r.PathValue("path")
	ctx, cancel := s.reqCtx(r)
	defer cancel()
	cw, ok := s.writerOf(ctx, w, name, fsWriter)
	if !ok {
		return
	}
	defer s.release(cw)
	v, err := cw.fs.Put(ctx, p, bytes.NewReader(b), fs.PutOptions{})
	if errors.Is(err, fs.ErrBadPath) || errors.Is(err, fs.ErrIsDir) {
		s.fileError(w, "put", err) // nothing was written
		return
	}
	if err != nil {
		s.dropWriter(name, cw)
		s.fileError(w, "put", err)
		return
	}
	s.m.appended.Inc()
	writeJSON(w, http.StatusOK, toFileVersion(v))
}

// openFS reads the capsule's tree as of its newest heartbeat (or seqno).
// The records the read passed over (not files records: another program's
// KV puts or plain records written into the capsule) are reported to the
// caller in the X-Gdp-Skipped header and counted in
// gdp_gateway_files_records_skipped_total (Session 21).
func (s *Server) openFS(ctx context.Context, w http.ResponseWriter, name pdu.Name, at uint64) (*fs.FS, error) {
	f, err := fs.Open(ctx, s.up.Caps(), name, fs.Options{At: at})
	if f != nil {
		if n := f.Stats.Skipped.Load(); n > 0 {
			w.Header().Set(skippedHeader, strconv.FormatUint(n, 10))
			s.m.filesSkipped.Add(float64(n))
		}
	}
	return f, err
}

// skippedHeader is the response header of a files read that passed over
// records which are not files records: how many.
const skippedHeader = "X-Gdp-Skipped"

func (s *Server) fileGet(w http.ResponseWriter, r *http.Request) {
	name, ok := s.capsuleName(w, r)
	if !ok {
		return
	}
	var at uint64
	if v := r.URL.Query().Get("seqno"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			s.fail(w, http.StatusBadRequest, "bad_request", fmt.Errorf("seqno %q: want a number from 1", v))
			return
		}
		at = n
	}
	p := "/" + r.PathValue("path")
	ctx, cancel := s.reqCtx(r)
	defer cancel()
	f, err := s.openFS(ctx, w, name, at)
	if err != nil {
		s.fileError(w, "files", err)
		return
	}
	fl, err := f.Open(ctx, p)
	if err != nil {
		s.fileError(w, "get "+p, err)
		return
	}
	defer fl.Close()
	// Read it whole first: every chunk is verified before a byte goes
	// out, so a failed read is an error status, never a truncated body.
	buf := make([]byte, fl.Size())
	if _, err := fl.ReadAtContext(ctx, buf, 0); err != nil && !errors.Is(err, io.EOF) {
		s.fileError(w, "get "+p, err)
		return
	}
	v := fl.Version()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Gdp-Version", strconv.FormatUint(v.Seqno, 10))
	w.Header().Set("X-Gdp-Sha256", hex.EncodeToString(v.SHA256))
	w.Header().Set("Content-Length", strconv.Itoa(len(buf)))
	_, _ = w.Write(buf)
}

type fileLogOut struct {
	Path     string           `json:"path"`
	Versions []fileVersionOut `json:"versions"`
	// Skipped is how many records the read passed over because they are
	// not files records (also in the X-Gdp-Skipped header); absent when
	// none.
	Skipped uint64 `json:"skipped,omitempty"`
}

func (s *Server) fileLog(w http.ResponseWriter, r *http.Request) {
	name, ok := s.capsuleName(w, r)
	if !ok {
		return
	}
	p := "/" + r.PathValue("path")
	ctx, cancel := s.reqCtx(r)
	defer cancel()
	f, err := s.openFS(ctx, w, name, 0)
	if err != nil {
		s.fileError(w, "files", err)
		return
	}
	vs, err := f.Log(p)
	if err != nil {
		s.fileError(w, "log "+p, err)
		return
	}
	// The path as the versions spell it (clean, no leading "/").
	clean, err := fs.CleanPath(p)
	if err != nil {
		s.fileError(w, "log "+p, err)
		return
	}
	out := fileLogOut{Path: clean, Versions: []fileVersionOut{}, Skipped: f.Stats.Skipped.Load()}
	for _, v := range vs {
		out.Versions = append(out.Versions, toFileVersion(v))
	}
	writeJSON(w, http.StatusOK, out)
}
