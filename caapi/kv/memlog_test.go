package kv

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
)

// testOwner owns every test capsule, so one writer key names one capsule.
var testOwner = func() ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		panic(err)
	}
	return k
}()

// memLog is a capsule in memory: the writer side (capsule.Writer, so
// records and heartbeats are the real ones) and what a server would serve
// (every entry, a Merkle tree for inclusion proofs, the newest heartbeat).
type memLog struct {
	key     ed25519.PrivateKey
	info    capsule.Info
	w       *capsule.Writer
	tree    capsule.MemTree
	entries []capsule.Record
	hb      *capsule.Heartbeat
	clock   int64 // the writer's clock, unix ns; tests advance it
}

func newMemLog(t testing.TB) *memLog {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return newMemLogKey(t, key)
}

// newMemLogKey is newMemLog with the writer key given: two logs with one
// key are two branches of one capsule (a forked writer).
func newMemLogKey(t testing.TB, key ed25519.PrivateKey) *memLog {
	t.Helper()
	pub := key.Public().(ed25519.PublicKey)
	meta, err := certs.NewCapsule(testOwner, pub, "kv test")
	if err != nil {
		t.Fatal(err)
	}
	info, err := capsule.InfoOf(meta)
	if err != nil {
		t.Fatal(err)
	}
	m := &memLog{key: key, info: info, w: capsule.NewWriter(info.Name, key), clock: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()}
	m.w.Now = func() time.Time { return time.Unix(0, m.clock) }
	return m
}

// fork is an empty log of the same capsule and writer key: what a writer
// that signs two logs writes.
func (m *memLog) fork() *memLog {
	f := &memLog{key: m.key, info: m.info, w: capsule.NewWriter(m.info.Name, m.key), clock: m.clock}
	f.w.Now = func() time.Time { return time.Unix(0, f.clock) }
	return f
}

// AppendRecord implements appender.
func (m *memLog) AppendRecord(_ context.Context, data []byte) (capsule.Record, error) {
	r := m.w.Append(append([]byte(nil), data...))
	m.entries = append(m.entries, r)
	m.tree.Append(r.Hash())
	return r, nil
}

func (m *memLog) Seqno() uint64 { return m.w.Seqno() }

func (m *memLog) hole() {
	s := m.w.Hole()
	h := capsule.NewHole(m.info.Name, s, m.headHash())
	m.entries = append(m.entries, h)
	m.tree.Append(h.Hash())
}

func (m *memLog) headHash() capsule.Hash {
	if len(m.entries) == 0 {
		return capsule.Hash{}
	}
	return m.entries[len(m.entries)-1].Hash()
}

// flush signs a heartbeat over everything written.
func (m *memLog) flush() { _, m.hb = m.w.Flush() }

// page is what a server answers to READ [from, to] under the newest
// heartbeat.
func (m *memLog) page(t testing.TB, from, to uint64) Page {
	t.Helper()
	p := Page{Heartbeat: m.hb.Marshal()}
	for s := from; s <= to; s++ {
		p.Records = append(p.Records, m.entries[s-1].Marshal())
	}
	path, err := capsule.InclusionPath(&m.tree, to-1, m.hb.Seqno)
	if err != nil {
		t.Fatal(err)
	}
	p.Proof = (&capsule.InclusionProof{Index: to - 1, Size: m.hb.Seqno, Path: path}).Marshal()
	return p
}

// name is the capsule's name.
func (m *memLog) name() pdu.Name { return m.info.Name }

// memSource serves the memLog to a Store as a replica would, verified as
// client.Reader verifies: each page against the newest heartbeat.
type memSource struct {
	t     testing.TB
	m     *memLog
	pages int // pages served
	max   uint64
}

func (s *memSource) Info() capsule.Info            { return s.m.info }
func (s *memSource) Heartbeat() *capsule.Heartbeat { return s.m.hb }

func (s *memSource) Read(ctx context.Context, from, to uint64) ([]capsule.Record, error) {
	var out []capsule.Record
	err := s.Scan(ctx, from, to, func(e capsule.Record) error {
		out = append(out, e)
		return nil
	})
	return out, err
}

func (s *memSource) Scan(_ context.Context, from, to uint64, fn func(capsule.Record) error) error {
	if s.m.hb == nil {
		return nil
	}
	if to == 0 || to > s.m.hb.Seqno {
		to = s.m.hb.Seqno
	}
	per := s.max
	if per == 0 {
		per = 64
	}
	for from <= to {
		end := min(to, from+per-1)
		p := s.m.page(s.t, from, end)
		s.pages++
		entries, err := verifyPage(s.m.info, p)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := fn(e); err != nil {
				return err
			}
		}
		from = end + 1
	}
	return nil
}

// verifyPage decodes and verifies a page as client.Reader does.
func verifyPage(info capsule.Info, p Page) ([]capsule.Record, error) {
	hb, err := capsule.UnmarshalHeartbeat(p.Heartbeat)
	if err != nil {
		return nil, err
	}
	entries := make([]capsule.Record, len(p.Records))
	for i, b := range p.Records {
		if entries[i], err = capsule.UnmarshalRecord(b); err != nil {
			return nil, err
		}
	}
	proof, err := capsule.UnmarshalInclusionProof(p.Proof)
	if err != nil {
		return nil, err
	}
	return entries, capsule.VerifyRange(info, hb, entries, proof, 0)
}
