package gateway

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

// recordIn is one record to append: exactly one of data (UTF-8 text) and
// data_base64 (any bytes, standard base64).
type recordIn struct {
	Data       *string `json:"data"`
	DataBase64 *string `json:"data_base64"`
}

func (r recordIn) bytes() ([]byte, error) {
	switch {
	case r.Data != nil && r.DataBase64 != nil:
		return nil, errors.New(`give "data" or "data_base64", not both`)
	case r.Data != nil:
		return []byte(*r.Data), nil
	case r.DataBase64 != nil:
		b, err := base64.StdEncoding.DecodeString(*r.DataBase64)
		if err != nil {
			return nil, fmt.Errorf("data_base64: %w", err)
		}
		return b, nil
	}
	return nil, errors.New(`a record needs "data" or "data_base64"`)
}

// recordOut is a verified record as the API returns it.
type recordOut struct {
	Seqno      uint64  `json:"seqno"`
	Time       string  `json:"time,omitempty"`
	Hole       bool    `json:"hole,omitempty"`
	Hash       string  `json:"hash"`
	Data       *string `json:"data,omitempty"`
	DataBase64 *string `json:"data_base64,omitempty"`
}

func toOut(e capsule.Record) recordOut {
	r := recordOut{Seqno: e.Seqno, Hole: e.Hole, Hash: e.Hash().String()}
	if e.Hole {
		return r
	}
	r.Time = time.Unix(0, e.Time).UTC().Format(time.RFC3339Nano)
	b64 := base64.StdEncoding.EncodeToString(e.Data)
	r.DataBase64 = &b64
	if utf8.Valid(e.Data) {
		s := string(e.Data)
		r.Data = &s
	}
	return r
}

// decodeStrict decodes one JSON value from b, refusing unknown fields and
// trailing data.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// readBody reads the request body within MaxBody; false means the answer
// was sent.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	max := s.conf().MaxBody
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.fail(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Errorf("request body over %d bytes (max_body)", max))
			return nil, false
		}
		s.fail(w, http.StatusBadRequest, "bad_request", fmt.Errorf("reading the request body: %w", err))
		return nil, false
	}
	return b, true
}

// capsuleName parses the {capsule} path parameter; false means the answer
// was sent.
func (s *Server) capsuleName(w http.ResponseWriter, r *http.Request) (pdu.Name, bool) {
	n, err := pdu.ParseName(r.PathValue("capsule"))
	if err != nil {
		s.fail(w, http.StatusBadRequest, "bad_request", fmt.Errorf("capsule name %q: %w", r.PathValue("capsule"), err))
		return pdu.Name{}, false
	}
	return n, true
}

func (s *Server) reqCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.conf().RequestTimeout)
}

// createIn is POST /v1/capsules.
type createIn struct {
	Owner       string   `json:"owner"`
	Writer      string   `json:"writer"`
	Servers     []string `json:"servers"`
	W           int      `json:"w"`
	Description string   `json:"description"`
	// Sealed makes an encrypted capsule (sealed.go): its first record is
	// the key record of epoch 1, for Readers (keystore aliases or base64url
	// Ed25519 public keys) and the writer.
	Sealed  bool     `json:"sealed"`
	Readers []string `json:"readers"`
}

type createOut struct {
	Capsule  string   `json:"capsule"`
	Replicas []string `json:"replicas"`
	W        int      `json:"w"`
	Expires  string   `json:"adcert_not_after"`
	Sealed   bool     `json:"sealed,omitempty"`
	Epoch    uint64   `json:"epoch,omitempty"`
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	b, ok := s.readBody(w, r)
	if !ok {
		return
	}
	var in createIn
	if err := decodeStrict(b, &in); err != nil {
		s.fail(w, http.StatusBadRequest, "malformed_json", fmt.Errorf("request body: %w", err))
		return
	}
	cfg := s.conf()
	if in.Owner == "" {
		in.Owner = cfg.DefaultOwner
	}
	if in.Owner == "" {
		s.fail(w, http.StatusBadRequest, "bad_request", errors.New(`"owner" (a keystore alias) is required: the gateway's configuration sets no capsules: owner`))
		return
	}
	if in.Writer == "" {
		in.Writer = in.Owner
	}
	servers := cfg.DefaultServers
	wq := cfg.DefaultW
	if len(in.Servers) > 0 {
		servers, wq = nil, in.W
		for _, sv := range in.Servers {
			n, err := pdu.ParseName(sv)
			if err != nil {
				s.fail(w, http.StatusBadRequest, "bad_request", fmt.Errorf("server name %q: %w", sv, err))
				return
			}
			servers = append(servers, n)
		}
	} else if in.W != 0 {
		wq = in.W
	}
	if len(servers) == 0 {
		s.fail(w, http.StatusBadRequest, "bad_request", errors.New(`"servers" is required: the gateway's configuration sets no capsules: servers`))
		return
	}
	if wq < 0 || wq > len(servers) {
		s.fail(w, http.StatusBadRequest, "bad_request", fmt.Errorf("w %d: want 0 (a majority) to %d", wq, len(servers)))
		return
	}
	if len(in.Readers) > 0 && !in.Sealed {
		s.fail(w, http.StatusBadRequest, "bad_request", errors.New(`"readers" is for an encrypted capsule ("sealed": true)`))
		return
	}
	readers, err := s.resolveReaders(in.Readers)
	if err != nil {
		s.fail(w, http.StatusBadRequest, "bad_request", err)
		return
	}
	own, err := s.keys.Load(in.Owner)
	if err != nil {
		s.fail(w, http.StatusBadRequest, "no_key", fmt.Errorf("owner %q: %w", in.Owner, err))
		return
	}
	wr, err := s.keys.Load(in.Writer)
	if err != nil {
		s.fail(w, http.StatusBadRequest, "no_key", fmt.Errorf("writer %q: %w", in.Writer, err))
		return
	}
	meta, err := certs.NewCapsule(own.Key, wr.Public(), in.Description)
	if err != nil {
		s.fail(w, http.StatusBadRequest, "bad_request", err)
		return
	}
	places, err := client.PlaceCapsule(own, meta, servers, cfg.AdCertLifetime)
	if err != nil {
		s.fail(w, http.StatusBadRequest, "bad_request", err)
		return
	}
	ctx, cancel := s.reqCtx(r)
	defer cancel()
	if err := s.up.Caps().Create(ctx, own, meta, wq, places); err != nil {
		var nak *client.NAKError
		if errors.As(err, &nak) && nak.Code == pdu.CodeNoRoute {
			// The name no router reaches is a server's: the capsule is
			// new. Nothing was placed (Create undoes a partial one).
			s.fail(w, http.StatusNotFound, "unknown_server", fmt.Errorf("create: %w: is each of \"servers\" the name of a running capsule server (its log's \"capsule server up\" line)?", err))
			return
		}
		s.overlayError(w, "create", err)
		return
	}
	if wq == 0 {
		wq = len(servers)/2 + 1
	}
	out := createOut{Capsule: meta.Name().String(), W: wq, Expires: places[0].AdCert.NotAfter.UTC().Format(time.RFC3339)}
	if in.Sealed {
		// Epoch 1's key record, written and acknowledged before the answer:
		// from its first record on the capsule is an encrypted one.
		cw, ok := s.writerOfReaders(ctx, w, meta.Name(), sealedWriter, readers)
		if !ok {
			return
		}
		_, err := cw.w.Flush(ctx)
		if err != nil {
			s.dropWriter(meta.Name(), cw)
		} else {
			out.Epoch, _ = cw.sl.Epoch()
		}
		s.release(cw)
		if err != nil {
			s.overlayError(w, "create (the key record)", err)
			return
		}
		out.Sealed = true
		s.markSealed(meta.Name(), true)
	}
	for _, n := range servers {
		out.Replicas = append(out.Replicas, n.String())
	}
	s.log.Info("capsule created", logging.Capsule(meta.Name()))
	writeJSON(w, http.StatusCreated, out)
}

// infoOut is GET /v1/capsules/{capsule}.
type infoOut struct {
	Capsule     string   `json:"capsule"`
	Description string   `json:"description"`
	OwnerKey    string   `json:"owner_key"`
	WriterKey   string   `json:"writer_key"`
	Writable    bool     `json:"writable"`
	Replicas    []string `json:"replicas"`
	W           int      `json:"w"`
	Server      string   `json:"server"`
	Head        uint64   `json:"head"`
	HeadTime    string   `json:"head_time,omitempty"`
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) {
	name, ok := s.capsuleName(w, r)
	if !ok {
		return
	}
	ctx, cancel := s.reqCtx(r)
	defer cancel()
	in, err := s.up.Caps().Info(ctx, name, name)
	if err != nil {
		s.overlayError(w, "info", err)
		return
	}
	_, kerr := s.writerKey(in.Meta.WriterKey)
	out := infoOut{Capsule: name.String(), Description: in.Meta.Description,
		OwnerKey:  base64.RawURLEncoding.EncodeToString(in.Meta.Key),
		WriterKey: base64.RawURLEncoding.EncodeToString(in.Meta.WriterKey),
		Writable:  kerr == nil, W: in.W, Server: in.Server.String(), Replicas: []string{}}
	for _, n := range in.Replicas {
		out.Replicas = append(out.Replicas, n.String())
	}
	if hb := in.Heartbeat; hb != nil {
		out.Head = hb.Seqno
		out.HeadTime = time.Unix(0, hb.Time).UTC().Format(time.RFC3339Nano)
	}
	writeJSON(w, http.StatusOK, out)
}

// writerKey finds the keystore key whose public half is pub.
func (s *Server) writerKey(pub ed25519.PublicKey) (*certs.Identity, error) {
	es, err := s.keys.List()
	if err != nil {
		return nil, err
	}
	for _, e := range es {
		id, err := s.keys.Load(e.Alias)
		if err != nil {
			continue
		}
		if id.Key.Public().(ed25519.PublicKey).Equal(pub) {
			return id, nil
		}
	}
	return nil, errors.New("the gateway's keystore holds no key for this capsule's writer")
}

// appendOut is the answer to an append.
type appendOut struct {
	Capsule  string `json:"capsule"`
	First    uint64 `json:"first"`
	Last     uint64 `json:"last"`
	Count    int    `json:"count"`
	Durable  bool   `json:"durable"`
	Acks     int    `json:"acks"`
	Replicas int    `json:"replicas"`
	W        int    `json:"w"`
}

// parseRecords reads an append's body: one JSON record, or NDJSON (one
// record per line). Everything is checked before anything is written.
func (s *Server) parseRecords(w http.ResponseWriter, r *http.Request) ([][]byte, bool) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	ndjson := ct == "application/x-ndjson"
	if ct != "" && ct != "application/json" && !ndjson {
		hint := ""
		if ct == "application/x-www-form-urlencoded" {
			// What curl -d sends unless told otherwise.
			hint = ` (curl -d sends application/x-www-form-urlencoded: add -H 'Content-Type: application/json')`
		}
		s.fail(w, http.StatusUnsupportedMediaType, "bad_request", fmt.Errorf("content type %q: want application/json (one record) or application/x-ndjson (one per line)%s", ct, hint))
		return nil, false
	}
	b, ok := s.readBody(w, r)
	if !ok {
		return nil, false
	}
	cfg := s.conf()
	var out [][]byte
	add := func(line int, raw []byte) bool {
		var in recordIn
		where := "request body"
		if ndjson {
			where = fmt.Sprintf("line %d", line)
		}
		if err := decodeStrict(raw, &in); err != nil {
			s.fail(w, http.StatusBadRequest, "malformed_json", fmt.Errorf("%s: %w", where, err))
			return false
		}
		d, err := in.bytes()
		if err != nil {
			s.fail(w, http.StatusBadRequest, "malformed_json", fmt.Errorf("%s: %w", where, err))
			return false
		}
		if len(d) > wire.MaxRecordData {
			s.fail(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Errorf("%s: %d bytes of data, a record holds at most %d", where, len(d), wire.MaxRecordData))
			return false
		}
		if len(out) >= cfg.MaxBatchRecords {
			s.fail(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Errorf("more than %d records in one request (max_batch_records)", cfg.MaxBatchRecords))
			return false
		}
		out = append(out, d)
		return true
	}
	if !ndjson {
		if !add(1, b) {
			return nil, false
		}
		return out, true
	}
	for line := 1; len(b) > 0; line++ {
		l := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			l, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		if !add(line, l) {
			return nil, false
		}
	}
	if len(out) == 0 {
		s.fail(w, http.StatusBadRequest, "bad_request", errors.New("no record in the request body"))
		return nil, false
	}
	return out, true
}

func (s *Server) appendRecords(w http.ResponseWriter, r *http.Request) {
	name, ok := s.capsuleName(w, r)
	if !ok {
		return
	}
	recs, ok := s.parseRecords(w, r)
	if !ok {
		return
	}
	ctx, cancel := s.reqCtx(r)
	defer cancel()
	cw, ok := s.writer(ctx, w, name)
	if !ok {
		return
	}
	defer s.release(cw)
	s.appendBatch(ctx, w, name, cw, recs, cw.w.Append)
}

// appendBatch appends recs through add (the capsule's writer, or its
// sealer), flushes, and answers with the seqnos and the durability. On an
// error the writer is dropped (the next request starts a fresh one) and
// the answer says how far the capsule is stored. It reports success.
func (s *Server) appendBatch(ctx context.Context, w http.ResponseWriter, name pdu.Name, cw *capWriter, recs [][]byte,
	add func(context.Context, []byte) (uint64, error)) bool {
	failed := func(err error) bool {
		p := cw.w.Progress()
		s.dropWriter(name, cw)
		s.overlayError(w, fmt.Sprintf("append (records up to seqno %d are stored)", p.Stored), err)
		return false
	}
	var first, last uint64
	for _, d := range recs {
		sq, err := add(ctx, d)
		if err != nil {
			return failed(err)
		}
		if first == 0 {
			first = sq
		}
		last = sq
	}
	d, err := cw.w.Flush(ctx)
	if err != nil {
		return failed(err)
	}
	s.m.appended.Add(float64(len(recs)))
	writeJSON(w, http.StatusOK, appendOut{Capsule: name.String(), First: first, Last: last, Count: len(recs),
		Durable: d.Met, Acks: d.Acks, Replicas: d.N, W: d.W})
	return true
}

// reader returns the capsule's cached reader, opening it on first use.
// The cache keeps MaxReaders, least recently used dropped first: a
// gateway reading many capsules over months holds a bounded set.
func (s *Server) reader(ctx context.Context, name pdu.Name) (*client.Reader, error) {
	if rd, ok := s.readers.Get(name); ok {
		return rd, nil
	}
	rd, err := s.up.Caps().NewReader(ctx, name, client.ReaderOptions{})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	evicted := s.readers.Add(name, rd)
	s.m.readers.Set(float64(s.readers.Len()))
	s.mu.Unlock()
	if evicted {
		s.m.readerEvictions.Inc()
	}
	return rd, nil
}

// dropReader forgets a reader after a failed read: the next read opens a
// new one from whichever replica is nearest then.
func (s *Server) dropReader(name pdu.Name, rd *client.Reader) {
	s.mu.Lock()
	if cur, ok := s.readers.Peek(name); ok && cur == rd {
		s.readers.Remove(name)
		s.m.readers.Set(float64(s.readers.Len()))
	}
	s.mu.Unlock()
}

// rangeOut is GET /v1/capsules/{capsule}/records.
type rangeOut struct {
	Capsule string      `json:"capsule"`
	Records []recordOut `json:"records"`
	// Next is the seqno to ask for next; More says the range was cut at
	// max_read_records.
	Next uint64 `json:"next"`
	More bool   `json:"more"`
}

func queryUint(q string, def uint64) (uint64, error) {
	if q == "" {
		return def, nil
	}
	return strconv.ParseUint(q, 10, 64)
}

func (s *Server) readRange(w http.ResponseWriter, r *http.Request) {
	name, ok := s.capsuleName(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	from, err := queryUint(q.Get("from"), 1)
	if err == nil && from == 0 {
		err = errors.New("seqnos start at 1")
	}
	if err != nil {
		s.fail(w, http.StatusBadRequest, "bad_request", fmt.Errorf("from: %w", err))
		return
	}
	to, err := queryUint(q.Get("to"), 0)
	if err == nil && to != 0 && to < from {
		err = fmt.Errorf("%d is before from %d", to, from)
	}
	if err != nil {
		s.fail(w, http.StatusBadRequest, "bad_request", fmt.Errorf("to: %w", err))
		return
	}
	var at time.Time
	if a := q.Get("at"); a != "" {
		if at, err = time.Parse(time.RFC3339Nano, a); err != nil {
			s.fail(w, http.StatusBadRequest, "bad_request", fmt.Errorf("at: %w (want RFC 3339)", err))
			return
		}
	}
	ctx, cancel := s.reqCtx(r)
	defer cancel()
	rd, err := s.reader(ctx, name)
	if err != nil {
		s.overlayError(w, "read", err)
		return
	}
	out := rangeOut{Capsule: name.String(), Records: []recordOut{}, Next: from}
	if !at.IsZero() {
		e, err := rd.ReadAt(ctx, at)
		if isStatus(err, 404) {
			writeJSON(w, http.StatusOK, out) // nothing written at or after at
			return
		}
		if err != nil {
			s.dropReader(name, rd)
			s.overlayError(w, "read", err)
			return
		}
		out.Records = append(out.Records, toOut(e))
		out.Next = e.Seqno + 1
		writeJSON(w, http.StatusOK, out)
		return
	}
	limit := uint64(s.conf().MaxReadRecords)
	end := from + limit - 1
	if to != 0 && to < end {
		end = to
	}
	err = rd.Scan(ctx, from, end, func(e capsule.Record) error {
		out.Records = append(out.Records, toOut(e))
		return nil
	})
	if err != nil {
		s.dropReader(name, rd)
		s.overlayError(w, "read", err)
		return
	}
	if n := len(out.Records); n > 0 {
		out.Next = out.Records[n-1].Seqno + 1
		out.More = uint64(n) == limit && (to == 0 || out.Next <= to)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) readOne(w http.ResponseWriter, r *http.Request) {
	name, ok := s.capsuleName(w, r)
	if !ok {
		return
	}
	seq, err := strconv.ParseUint(r.PathValue("seqno"), 10, 64)
	if err != nil || seq == 0 {
		s.fail(w, http.StatusBadRequest, "bad_request", fmt.Errorf("seqno %q: want a number from 1", r.PathValue("seqno")))
		return
	}
	ctx, cancel := s.reqCtx(r)
	defer cancel()
	rd, err := s.reader(ctx, name)
	if err != nil {
		s.overlayError(w, "read", err)
		return
	}
	var got *capsule.Record
	err = rd.Scan(ctx, seq, seq, func(e capsule.Record) error {
		got = &e
		return nil
	})
	if err != nil {
		s.dropReader(name, rd)
		s.overlayError(w, "read", err)
		return
	}
	if got == nil {
		s.fail(w, http.StatusNotFound, "no_such_record", fmt.Errorf("capsule %s holds no record %d yet", name, seq))
		return
	}
	writeJSON(w, http.StatusOK, toOut(*got))
}

func isStatus(err error, code int) bool {
	var se *wire.StatusError
	return errors.As(err, &se) && int(se.Status) == code
}
