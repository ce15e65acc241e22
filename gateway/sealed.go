package gateway

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gdpnet/gdpnet/caapi/fs"
	"github.com/gdpnet/gdpnet/caapi/seal"
	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
)

// Encrypted capsules over HTTP (caapi/seal, docs/PROTOCOL.md §11). The
// writer's gateway seals every payload under the epoch's content key and
// writes the key records (POST /v1/capsules with "sealed": true, then
// /v1/sealed/{capsule}/…); a reader's gateway opens them with whichever
// key of its keystore the epoch's key record wraps the content key for.
// Neither the capsule servers nor the routers ever see a content key or a
// plaintext; a gateway that holds no reader key answers 403 not_a_reader,
// never bytes.

// resolveReader turns a reader given by the API — a keystore alias or an
// Ed25519 public key in base64url — into the key.
func (s *Server) resolveReader(v string) (ed25519.PublicKey, error) {
	if id, err := s.keys.Load(v); err == nil {
		return id.Public(), nil
	}
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("reader %q: neither a keystore alias nor an Ed25519 public key (32 bytes, base64url)", v)
	}
	if _, err := seal.X25519Public(b); err != nil {
		return nil, fmt.Errorf("reader %q: %w", v, err)
	}
	return ed25519.PublicKey(b), nil
}

func (s *Server) resolveReaders(in []string) ([]ed25519.PublicKey, error) {
	if len(in) >= seal.MaxReaders {
		return nil, fmt.Errorf("%d readers: an encrypted capsule has at most %d (the writer included)", len(in), seal.MaxReaders)
	}
	var out []ed25519.PublicKey
	for _, v := range in {
		k, err := s.resolveReader(v)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// userKeys are the private keys of the gateway's keystore: the keys it
// may open sealed records with.
func (s *Server) userKeys() []ed25519.PrivateKey {
	es, err := s.keys.List()
	if err != nil {
		return nil
	}
	var out []ed25519.PrivateKey
	for _, e := range es {
		if id, err := s.keys.Load(e.Alias); err == nil {
			out = append(out, id.Key)
		}
	}
	return out
}

// sealedState says whether a capsule is an encrypted one: its first
// record is a key record signed by its writer. known is false while the
// capsule holds nothing yet. Decided once per capsule.
func (s *Server) sealedState(ctx context.Context, name pdu.Name) (sealed, known bool, err error) {
	s.mu.Lock()
	m, _ := s.marks.Get(name)
	s.mu.Unlock()
	if m.sealedKnown {
		return m.sealed, true, nil
	}
	rd, err := s.reader(ctx, name)
	if err != nil {
		return false, false, err
	}
	recs, err := rd.Read(ctx, 1, 1)
	if err != nil {
		s.dropReader(name, rd)
		return false, false, err
	}
	if len(recs) == 0 {
		return false, false, nil
	}
	sealed, err = firstIsKeyRecord(ctx, rd)
	if err != nil {
		s.dropReader(name, rd)
		return false, false, err
	}
	s.markFirst(name, sealed, recs[0].Data)
	return sealed, true, nil
}

// firstIsKeyRecord reads rd's record 1: a key record (an encrypted
// capsule; one whose own signature fails is still one, never a plain
// capsule) or something else (malformed as a key record: a plain one).
// A read that fails decides nothing.
func firstIsKeyRecord(ctx context.Context, rd *client.Reader) (bool, error) {
	_, err := seal.ReadKeyRecord(ctx, rd, 1)
	switch {
	case err == nil, errors.Is(err, seal.ErrBadSignature):
		return true, nil
	case errors.Is(err, seal.ErrMalformed):
		return false, nil
	}
	return false, err
}

// recheckSealed decides whether a capsule whose nearest replica showed no
// record 1 is an encrypted one after all, for a writer of plain records
// (or KV operations, or files) just opened on it. With start known (a
// plain writer: the newest head its replicas showed) 0, every replica it
// asked was empty: plain, nothing to read. Otherwise each replica is asked
// by its own name for record 1 — verified against the writer's signature,
// so a replica can withhold it but not forge it — and the first that
// shows it decides (and is remembered). When the writer resumes above 0
// and none shows it, nothing is decided: an error, and nothing is
// written.
func (s *Server) recheckSealed(ctx context.Context, name pdu.Name, replicas []pdu.Name, start uint64, startKnown bool) (bool, error) {
	if startKnown && start == 0 {
		return false, nil
	}
	s.m.sealed.WithLabelValues("rechecked").Inc()
	caps := s.up.Caps()
	var errs []error
	for _, r := range replicas {
		rd, err := caps.NewReader(ctx, name, client.ReaderOptions{Server: r})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		recs, err := rd.Read(ctx, 1, 1)
		if err != nil || len(recs) == 0 {
			errs = append(errs, err)
			continue
		}
		sealed, err := firstIsKeyRecord(ctx, rd)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.markFirst(name, sealed, recs[0].Data)
		return sealed, nil
	}
	if startKnown {
		return false, sealedUnknown(name, start, errs)
	}
	return false, nil
}

// sealedUnknown is recheckSealed's refusal when no replica showed record 1
// of a capsule whose writer resumes above seqno 0. The replicas' errors
// are told, not wrapped: overlayError answers it 502 overlay_error
// (docs/GATEWAY.md), never after one replica's cause — a NO_ROUTE NAK or a
// 404 of one replica would have made it 404 unknown_capsule for a capsule
// whose other replicas hold records (review9).
func sealedUnknown(name pdu.Name, start uint64, errs []error) error {
	return fmt.Errorf("capsule %s: the writer resumes after seqno %d but no replica showed record 1, "+
		"so whether it is an encrypted capsule is not known: nothing was written, try again (%v)", name, start, errors.Join(errs...))
}

// refuseSealed answers 409 sealed_capsule: plain records, KV operations or
// files would be in the clear in an encrypted capsule and break its
// readers.
func (s *Server) refuseSealed(w http.ResponseWriter, name pdu.Name) {
	s.fail(w, http.StatusConflict, "sealed_capsule", fmt.Errorf("capsule %s is an encrypted capsule: append through /v1/sealed/%s/records", name, name))
}

// markFirst remembers what a capsule's verified first record says: an
// encrypted capsule or not, and whether it holds files.
func (s *Server) markFirst(name pdu.Name, sealed bool, first []byte) {
	s.mu.Lock()
	m, _ := s.marks.Peek(name)
	m.sealed, m.sealedKnown = sealed, true
	m.files = !sealed && fs.IsRecord(first)
	s.marks.Add(name, m)
	s.mu.Unlock()
}

// holdsFiles reports whether the capsule's first record, when read, was a
// files-capsule record.
func (s *Server) holdsFiles(name pdu.Name) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, _ := s.marks.Peek(name)
	return m.files
}

// markSealed remembers whether a capsule is encrypted (decided once: its
// first record says).
func (s *Server) markSealed(name pdu.Name, sealed bool) {
	s.mu.Lock()
	m, _ := s.marks.Peek(name)
	m.sealed, m.sealedKnown = sealed, true
	s.marks.Add(name, m)
	s.mu.Unlock()
}

// requireSealed answers 409 not_sealed for a plain capsule; false means
// the answer was sent.
func (s *Server) requireSealed(ctx context.Context, w http.ResponseWriter, name pdu.Name) bool {
	sealed, known, err := s.sealedState(ctx, name)
	if err != nil {
		s.overlayError(w, "sealed", err)
		return false
	}
	if known && !sealed {
		s.fail(w, http.StatusConflict, "not_sealed", fmt.Errorf("capsule %s is not an encrypted capsule: use /v1/capsules/%s/records", name, name))
		return false
	}
	return true
}

// sealedError maps an error of opening a sealed record.
func (s *Server) sealedError(w http.ResponseWriter, what string, err error) {
	switch {
	case errors.Is(err, seal.ErrNoKey):
		s.fail(w, http.StatusForbidden, "not_a_reader", fmt.Errorf("%s: %w (no key in this gateway's keystore is a reader of that epoch)", what, err))
	case errors.Is(err, seal.ErrMalformed), errors.Is(err, seal.ErrDecrypt), errors.Is(err, seal.ErrBadSignature):
		s.fail(w, http.StatusBadGateway, "bad_sealed_record", fmt.Errorf("%s: %w", what, err))
	default:
		s.overlayError(w, what, err)
	}
}

// sealedRecordOut is a verified record of an encrypted capsule, opened.
type sealedRecordOut struct {
	recordOut
	Epoch uint64 `json:"epoch,omitempty"`
	// KeyRecord marks a key record (readers changed; no data).
	KeyRecord bool `json:"key_record,omitempty"`
}

type sealedRangeOut struct {
	Capsule string            `json:"capsule"`
	Records []sealedRecordOut `json:"records"`
	Next    uint64            `json:"next"`
	More    bool              `json:"more"`
}

// openRecord opens one verified entry: a hole or a key record carries no
// data.
func openRecord(ctx context.Context, op *seal.Opener, e capsule.Record) (sealedRecordOut, error) {
	r := sealedRecordOut{recordOut: recordOut{Seqno: e.Seqno, Hole: e.Hole, Hash: e.Hash().String()}}
	if e.Hole {
		return r, nil
	}
	r.Time = time.Unix(0, e.Time).UTC().Format(time.RFC3339Nano)
	epoch, _, isKeys, err := seal.Epoch(e)
	if err != nil {
		return r, fmt.Errorf("entry %d: %w", e.Seqno, err)
	}
	r.Epoch = epoch
	if isKeys {
		r.KeyRecord = true
		return r, nil
	}
	pt, err := op.Open(ctx, e)
	if err != nil {
		return r, err
	}
	b64 := base64.StdEncoding.EncodeToString(pt)
	r.DataBase64 = &b64
	if utf8.Valid(pt) {
		s := string(pt)
		r.Data = &s
	}
	return r, nil
}

func (s *Server) sealedAppend(w http.ResponseWriter, r *http.Request) {
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
	if !s.requireSealed(ctx, w, name) {
		return
	}
	cw, ok := s.writerOf(ctx, w, name, sealedWriter)
	if !ok {
		return
	}
	defer s.release(cw)
	for _, d := range recs {
		if len(d)+seal.Overhead > wire.MaxRecordData {
			s.fail(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Errorf("%d bytes of data: a sealed record holds at most %d", len(d), wire.MaxRecordData-seal.Overhead))
			return
		}
	}
	if s.appendBatch(ctx, w, name, cw, recs, cw.sl.Append) {
		s.m.sealed.WithLabelValues("sealed").Add(float64(len(recs)))
	}
}

func (s *Server) sealedRead(w http.ResponseWriter, r *http.Request) {
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
	ctx, cancel := s.reqCtx(r)
	defer cancel()
	s.sealedRange(ctx, w, name, from, to, false)
}

func (s *Server) sealedReadOne(w http.ResponseWriter, r *http.Request) {
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
	s.sealedRange(ctx, w, name, seq, seq, true)
}

// sealedRange reads [from, to], opens every record and answers with all
// of them or an error: never part of a range, never a byte this gateway
// could not open.
func (s *Server) sealedRange(ctx context.Context, w http.ResponseWriter, name pdu.Name, from, to uint64, one bool) {
	if !s.requireSealed(ctx, w, name) {
		return
	}
	rd, err := s.reader(ctx, name)
	if err != nil {
		s.overlayError(w, "read", err)
		return
	}
	op := seal.NewOpenerKeys(rd, s.userKeys()...)
	limit := uint64(s.conf().MaxReadRecords)
	end := from + limit - 1
	if to != 0 && to < end {
		end = to
	}
	out := sealedRangeOut{Capsule: name.String(), Records: []sealedRecordOut{}, Next: from}
	var openErr error
	err = rd.Scan(ctx, from, end, func(e capsule.Record) error {
		o, err := openRecord(ctx, op, e)
		if err != nil {
			openErr = err
			return err
		}
		out.Records = append(out.Records, o)
		return nil
	})
	if openErr != nil {
		s.sealedError(w, "read", openErr)
		return
	}
	if err != nil {
		s.dropReader(name, rd)
		s.overlayError(w, "read", err)
		return
	}
	s.m.sealed.WithLabelValues("opened").Add(float64(len(out.Records)))
	if one {
		if len(out.Records) == 0 {
			s.fail(w, http.StatusNotFound, "no_such_record", fmt.Errorf("capsule %s holds no record %d yet", name, from))
			return
		}
		writeJSON(w, http.StatusOK, out.Records[0])
		return
	}
	if n := len(out.Records); n > 0 {
		out.Next = out.Records[n-1].Seqno + 1
		out.More = uint64(n) == limit && (to == 0 || out.Next <= to)
	}
	writeJSON(w, http.StatusOK, out)
}

// readersOut is the current epoch of an encrypted capsule.
type readersOut struct {
	Capsule  string `json:"capsule"`
	Epoch    uint64 `json:"epoch"`
	KeySeqno uint64 `json:"key_seqno"`
	// Readers are the Ed25519 public keys (base64url) of the epoch's
	// readers, the writer's included.
	Readers []string `json:"readers"`
	// Reader says whether this gateway's keystore holds one of them.
	Reader bool `json:"reader"`
}

func (s *Server) toReaders(name pdu.Name, ki seal.KeyInfo) readersOut {
	out := readersOut{Capsule: name.String(), Epoch: ki.Epoch, KeySeqno: ki.KeySeq, Readers: []string{}}
	mine := map[string]bool{}
	for _, k := range s.userKeys() {
		mine[string(k.Public().(ed25519.PublicKey))] = true
	}
	for _, r := range ki.Readers {
		out.Readers = append(out.Readers, base64.RawURLEncoding.EncodeToString(r))
		out.Reader = out.Reader || mine[string(r)]
	}
	return out
}

func (s *Server) sealedReaders(w http.ResponseWriter, r *http.Request) {
	name, ok := s.capsuleName(w, r)
	if !ok {
		return
	}
	ctx, cancel := s.reqCtx(r)
	defer cancel()
	if !s.requireSealed(ctx, w, name) {
		return
	}
	in, err := s.up.Caps().Info(ctx, name, name)
	if err != nil {
		s.overlayError(w, "readers", err)
		return
	}
	rd, err := s.reader(ctx, name)
	if err != nil {
		s.overlayError(w, "readers", err)
		return
	}
	var head uint64
	if in.Heartbeat != nil {
		head = in.Heartbeat.Seqno
	}
	ki, err := seal.Current(ctx, rd, head)
	if errors.Is(err, seal.ErrNotSealed) {
		s.fail(w, http.StatusNotFound, "no_such_record", fmt.Errorf("capsule %s holds no key record yet", name))
		return
	}
	if err != nil {
		s.dropReader(name, rd)
		s.sealedError(w, "readers", err)
		return
	}
	writeJSON(w, http.StatusOK, s.toReaders(name, ki))
}

// sealedChangeReader adds (add) or removes a reader: a new epoch either
// way, its key record written and acknowledged before the answer.
func (s *Server) sealedChangeReader(add bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name, ok := s.capsuleName(w, r)
		if !ok {
			return
		}
		reader, err := s.resolveReader(r.PathValue("reader"))
		if err != nil {
			s.fail(w, http.StatusBadRequest, "bad_request", err)
			return
		}
		ctx, cancel := s.reqCtx(r)
		defer cancel()
		if !s.requireSealed(ctx, w, name) {
			return
		}
		cw, ok := s.writerOf(ctx, w, name, sealedWriter)
		if !ok {
			return
		}
		defer s.release(cw)
		if add {
			err = cw.sl.AddReader(ctx, reader)
		} else {
			err = cw.sl.RemoveReader(ctx, reader)
		}
		if errors.Is(err, seal.ErrReaders) {
			// Refused before anything was written.
			s.fail(w, http.StatusBadRequest, "bad_request", err)
			return
		}
		if err == nil {
			_, err = cw.w.Flush(ctx)
		}
		if err != nil {
			s.dropWriter(name, cw)
			s.overlayError(w, "readers", err)
			return
		}
		epoch, keySeq := cw.sl.Epoch()
		s.m.sealed.WithLabelValues("rotated").Inc()
		writeJSON(w, http.StatusOK, s.toReaders(name, seal.KeyInfo{Epoch: epoch, KeySeq: keySeq, Readers: cw.sl.Readers()}))
	}
}

// openSealer starts the sealer of a capsule's open writer: the newest
// epoch recovered with the writer key, or epoch 1 for readers on a
// capsule with nothing written yet.
func (s *Server) openSealer(ctx context.Context, name pdu.Name, wr *client.Writer, key ed25519.PrivateKey, readers []ed25519.PublicKey) (*seal.Sealer, error) {
	rd, err := s.reader(ctx, name)
	if err != nil {
		return nil, err
	}
	sl, err := seal.ResumeSealer(ctx, wr, rd, key, readers...)
	if err != nil {
		s.dropReader(name, rd)
		return nil, err
	}
	return sl, nil
}
