package client

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/internal/fuzzseed"
	"github.com/gdpnet/gdpnet/pdu"
)

// FuzzMetadataAnswer: a METADATA answer as a writer or reader takes it from
// a replica (decode, then parseInfo: metadata that must hash to the capsule
// asked for, placement, heartbeat, frontier, head hash, evidence). Seeds: a
// genuine answer for a capsule of three records and the capsule command
// vectors. Nothing may panic; an accepted answer's head is the signed
// heartbeat's, and its tree the heartbeat's root.
func FuzzMetadataAnswer(f *testing.F) {
	owner := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x4f}, 32))
	writer := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x57}, 32))
	meta := &certs.Metadata{Kind: certs.KindCapsule, Key: owner.Public().(ed25519.PublicKey), WriterKey: writer.Public().(ed25519.PublicKey),
		Created: time.Unix(1_700_000_000, 0).UTC(), Description: "fuzz"}
	c := meta.Name()
	tree := &capsule.Tree{}
	var prev capsule.Hash
	for i := uint64(1); i <= 3; i++ {
		r := capsule.NewRecord(c, i, int64(i), prev, []byte{byte(i)})
		prev = r.Hash()
		tree.Append(prev, nil)
	}
	hb := &capsule.Heartbeat{Capsule: c, Seqno: 3, Root: tree.Root(), Time: 3}
	hb.Sign(writer)
	pl, err := capsule.SignPlacement(owner, meta, []pdu.Name{{0xaa}, {0xbb}, {0xcc}}, 2, time.Unix(1_700_000_000, 0))
	if err != nil {
		f.Fatal(err)
	}
	var fr [][]byte
	for _, h := range tree.Frontier() {
		fr = append(fr, append([]byte(nil), h[:]...))
	}
	genuine := &wire.Message{Op: wire.OpMetadata, ID: 7, Status: wire.StatusOK, Capsule: c[:], Metadata: meta.Marshal(),
		Heartbeat: hb.Marshal(), Head: 3, Time: 3, Hash: prev[:], Frontier: fr, Placement: pl.Marshal()}
	b, err := genuine.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	if in, err := parseInfo(c, wire.Reply{From: pdu.Name{0xaa}, Msg: genuine}); err != nil || in.Heartbeat == nil || in.Placement == nil {
		f.Fatalf("genuine answer: %v", err)
	}
	fuzzseed.Add(f, b)
	if vs, err := os.ReadFile(filepath.Join("..", "capsuled", "wire", "testdata", "vectors.txt")); err == nil {
		for _, line := range strings.Split(string(vs), "\n") {
			if _, hx, ok := strings.Cut(line, " "); ok && !strings.HasPrefix(line, "#") {
				if v, err := hex.DecodeString(hx); err == nil {
					fuzzseed.Add(f, v)
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := wire.Unmarshal(in)
		if err != nil {
			return
		}
		info, err := parseInfo(c, wire.Reply{From: pdu.Name{0xaa}, Msg: m})
		if err != nil {
			return
		}
		if info.Meta.Name() != c {
			t.Fatal("accepted metadata of another capsule")
		}
		if info.Heartbeat != nil {
			if info.Heartbeat.Verify(c, meta.WriterKey) != nil || info.Head.Seqno != info.Heartbeat.Seqno || info.Head.Tree.Root() != info.Heartbeat.Root {
				t.Fatal("accepted a head that is not the signed heartbeat's")
			}
		}
	})
}
