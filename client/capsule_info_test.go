package client

import (
	"errors"
	"testing"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestParseInfo: a METADATA answer is believed only when the metadata
// hashes to the capsule, the heartbeat is the writer's and matches the
// head, and the frontier rebuilds the heartbeat's root.
func TestParseInfo(t *testing.T) {
	owner, _ := certs.NewIdentity(certs.KindClient, "owner")
	writer, _ := certs.NewIdentity(certs.KindClient, "writer")
	other, _ := certs.NewIdentity(certs.KindClient, "other")
	meta, err := certs.NewCapsule(owner.Key, writer.Public(), "info test")
	if err != nil {
		t.Fatal(err)
	}
	c := meta.Name()
	w := capsule.NewWriter(c, writer.Key)
	for i := range 5 {
		w.Append([]byte{byte(i)})
	}
	_, hb := w.Flush()
	head := w.Head()
	good := func() *wire.Message {
		m := &wire.Message{Op: wire.OpMetadata, ID: 1, Status: wire.StatusOK, Capsule: c[:], Metadata: meta.Marshal(),
			Head: hb.Seqno, Heartbeat: hb.Marshal(), Hash: head.Hash[:], Time: uint64(head.Time)}
		for _, h := range head.Tree.Frontier() {
			m.Frontier = append(m.Frontier, append([]byte(nil), h[:]...))
		}
		return m
	}
	forged := capsule.NewWriter(c, other.Key)
	forged.Append([]byte("x"))
	_, badHB := forged.Flush()
	otherMeta, _ := certs.NewCapsule(owner.Key, other.Public(), "another capsule")

	tests := []struct {
		name   string
		mutate func(m *wire.Message)
		want   error
	}{
		{"good", func(*wire.Message) {}, nil},
		{"metadata of another capsule", func(m *wire.Message) { m.Metadata = otherMeta.Marshal() }, capsule.ErrWrongCapsule},
		{"heartbeat by another key", func(m *wire.Message) { m.Heartbeat = badHB.Marshal() }, capsule.ErrBadSignature},
		{"head does not match the heartbeat", func(m *wire.Message) { m.Head = 4 }, capsule.ErrBadProof},
		{"tampered frontier", func(m *wire.Message) { m.Frontier[0][0] ^= 1 }, capsule.ErrBadProof},
		{"short frontier", func(m *wire.Message) { m.Frontier = m.Frontier[:1] }, capsule.ErrBadProof},
		{"wrong head hash", func(m *wire.Message) { m.Hash = make([]byte, 32) }, capsule.ErrBadProof},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := good()
			tt.mutate(m)
			in, err := parseInfo(c, wire.Reply{From: pdu.Name{1}, Msg: m})
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if in.Head.Seqno != 5 || in.Head.Tree.Root() != hb.Root || in.Head.Hash != head.Hash {
					t.Fatalf("head %+v", in.Head)
				}
				// A writer resumes from it: the next batch extends the log.
				rw := capsule.RestartWriter(c, writer.Key, in.Head)
				rw.Append([]byte("six"))
				recs, hb2 := rw.Flush()
				b, err := capsule.CheckBatch(capsule.Info{Name: c, Writer: writer.Public()}, recs, hb2, 0)
				if err != nil {
					t.Fatal(err)
				}
				h := head
				if _, err := h.Apply(b, nil); err != nil {
					t.Fatalf("resumed batch does not extend the log: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}
