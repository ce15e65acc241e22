package fs

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/gdpnet/gdpnet/internal/fuzzseed"
)

// FuzzRecordFormat: what a reader does with a files-capsule record's data
// (docs/FILES.md): parse the header, then a manifest's body. Any bytes give
// a record or ErrNotFS, never a panic; an accepted manifest is
// self-consistent and re-encodes to the same bytes.
func FuzzRecordFormat(f *testing.F) {
	sum := sha256.Sum256([]byte("content"))
	for _, m := range []*Manifest{
		{Path: "docs/a.txt", Type: TypeFile, Size: 7, Mode: 0o644, MTime: 1_700_000_000_000_000_000,
			Extents: []Extent{{First: 1, Count: 1}}, Lists: []uint64{2}, SHA256: sum[:], PrevVersion: 0},
		{Path: "docs", Type: TypeDir, Mode: 0o755},
		{Path: "docs/old", Type: TypeRemoved, PrevVersion: 4},
	} {
		b, err := encodeManifest(m, 3)
		if err != nil {
			f.Fatal(err)
		}
		fuzzseed.Add(f, b)
	}
	fuzzseed.Add(f, append(header(kindChunk, 0), "content"...))
	fuzzseed.Add(f, append(header(kindList, 9), sum[:]...))
	f.Fuzz(func(t *testing.T, data []byte) {
		kind, prev, body, err := parseHeader(data)
		if err != nil {
			return
		}
		if kind != kindManifest {
			return
		}
		m, err := decodeManifest(body)
		if err != nil {
			return
		}
		if err := m.check(); err != nil {
			t.Fatalf("decoded manifest fails its check: %v", err)
		}
		if m.Type == TypeFile && m.chunks() != (m.Size+ChunkSize-1)/ChunkSize {
			t.Fatalf("manifest of %d bytes names %d chunks", m.Size, m.chunks())
		}
		again, err := encodeManifest(m, prev)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("re-encodes to %x (%v), not %x", again, err, data)
		}
	})
}
