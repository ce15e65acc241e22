package fs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/internal/detcbor"
)

// Record layout (docs/FILES.md). Every record of a files capsule starts
// with a 13-byte header:
//
//	"gfs1" kind(1) prev(8, big-endian)
//
// where prev is the seqno of the newest manifest written before this
// record (0: none), so a reader finds the newest manifest from any
// record, and the manifests form a chain back to the first. Kinds:
//
//	'C' chunk:     the header, then up to ChunkSize bytes of file content
//	'L' hash list: the header, then SHA-256 record-data hashes of chunks,
//	               32 bytes each, in file order
//	'M' manifest:  the header, then the canonical CBOR of Manifest
//
// A file version is its manifest record; its seqno is the version.
const (
	headerLen = 13
	// ChunkSize is the most file content one chunk record carries: a
	// record of at most wire.MaxRecordData bytes, one per READ answer.
	ChunkSize = wire.MaxRecordData - headerLen
	// hashesPerList is how many chunk hashes one hash-list record holds.
	hashesPerList = (wire.MaxRecordData - headerLen) / capsule.HashLen
	// MaxPath bounds a path's length in bytes (and each element to 255).
	MaxPath = 4096
)

const magic = "gfs1"

// Record kinds.
const (
	kindChunk    = 'C'
	kindList     = 'L'
	kindManifest = 'M'
)

// Entry types.
const (
	TypeFile    = 1
	TypeDir     = 2
	TypeRemoved = 3
)

// Errors callers branch on.
var (
	// ErrNotFS: a record is not one of a files capsule.
	ErrNotFS = errors.New("fs: not a files-capsule record")
	// ErrNotExist: no such path (or version).
	ErrNotExist = errors.New("fs: no such file or directory")
	// ErrBadPath: a path that is not a clean relative path.
	ErrBadPath = errors.New("fs: bad path")
	// ErrCorrupt: a chunk, list or manifest does not match what the
	// writer-signed manifest says (it passed the capsule's own checks, so
	// the writer wrote an inconsistent file, or a replica served another
	// record).
	ErrCorrupt = errors.New("fs: content does not match its manifest")
	// ErrIsDir: the path is a directory.
	ErrIsDir = errors.New("fs: is a directory")
)

// Extent is a run of Count chunk records from seqno First.
type Extent struct {
	_     struct{} `cbor:",toarray"`
	First uint64
	Count uint64
}

// Manifest is one version of one path.
type Manifest struct {
	Path string `cbor:"1,keyasint"`
	Type uint8  `cbor:"2,keyasint"`
	Size uint64 `cbor:"3,keyasint,omitempty"`
	Mode uint32 `cbor:"4,keyasint,omitempty"` // permission bits
	// MTime is the file's modification time, unix nanoseconds.
	MTime int64 `cbor:"5,keyasint,omitempty"`
	// Extents are the chunk records in file order.
	Extents []Extent `cbor:"6,keyasint,omitempty"`
	// Lists are the seqnos of the hash-list records, in order: together
	// they hold one hash per chunk.
	Lists []uint64 `cbor:"7,keyasint,omitempty"`
	// SHA256 is the hash of the whole content.
	SHA256 []byte `cbor:"8,keyasint,omitempty"`
	// PrevVersion is the seqno of this path's previous manifest (0: none).
	PrevVersion uint64 `cbor:"9,keyasint,omitempty"`
}

var manifestCodec = detcbor.Must(detcbor.Limits{MaxArrayElements: 4096, MaxMapPairs: 16, MaxNestedLevels: 4})

func header(kind byte, prev uint64) []byte {
	b := make([]byte, headerLen, wire.MaxRecordData)
	copy(b, magic)
	b[4] = kind
	binary.BigEndian.PutUint64(b[5:], prev)
	return b
}

// IsRecord reports whether data is laid out as a record of a files capsule
// (the header's magic and a known kind): a capsule whose first record is
// one holds files, and a record of any other kind appended to it makes
// its tree unreadable (ErrNotFS).
func IsRecord(data []byte) bool {
	_, _, _, err := parseHeader(data)
	return err == nil
}

// parseHeader returns a record's kind, prev pointer and body.
func parseHeader(data []byte) (kind byte, prev uint64, body []byte, err error) {
	if len(data) < headerLen || string(data[:4]) != magic {
		return 0, 0, nil, ErrNotFS
	}
	kind = data[4]
	prev = binary.BigEndian.Uint64(data[5:headerLen])
	switch kind {
	case kindChunk, kindList, kindManifest:
	default:
		return 0, 0, nil, fmt.Errorf("%w: kind %q", ErrNotFS, kind)
	}
	return kind, prev, data[headerLen:], nil
}

// encodeManifest is a manifest record's data.
func encodeManifest(m *Manifest, prev uint64) ([]byte, error) {
	b, err := manifestCodec.Marshal(m)
	if err != nil {
		return nil, err
	}
	if headerLen+len(b) > wire.MaxRecordData {
		return nil, fmt.Errorf("fs: manifest of %s is %d bytes, more than one record holds", m.Path, len(b))
	}
	return append(header(kindManifest, prev), b...), nil
}

// decodeManifest checks and decodes a manifest body.
func decodeManifest(body []byte) (*Manifest, error) {
	var m Manifest
	if err := manifestCodec.UnmarshalStrict(body, &m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrNotFS, err)
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return &m, nil
}

// chunks is how many chunks the manifest's extents name.
func (m *Manifest) chunks() uint64 {
	var n uint64
	for _, e := range m.Extents {
		n += e.Count
	}
	return n
}

func (m *Manifest) check() error {
	if _, err := CleanPath(m.Path); err != nil || m.Path == "" {
		return fmt.Errorf("%w: manifest path %q", ErrNotFS, m.Path)
	}
	switch m.Type {
	case TypeFile:
		var n uint64
		for _, e := range m.Extents {
			if e.First == 0 || e.Count == 0 || e.Count > 1<<40 {
				return fmt.Errorf("%w: manifest of %s: bad extent", ErrNotFS, m.Path)
			}
			n += e.Count
		}
		if n != (m.Size+ChunkSize-1)/ChunkSize {
			return fmt.Errorf("%w: manifest of %s: %d chunks for %d bytes", ErrNotFS, m.Path, n, m.Size)
		}
		if uint64(len(m.Lists)) != (n+hashesPerList-1)/hashesPerList {
			return fmt.Errorf("%w: manifest of %s: %d hash lists for %d chunks", ErrNotFS, m.Path, len(m.Lists), n)
		}
		if len(m.SHA256) != 32 {
			return fmt.Errorf("%w: manifest of %s: no content hash", ErrNotFS, m.Path)
		}
	case TypeDir, TypeRemoved:
		if m.Size != 0 || len(m.Extents) != 0 || len(m.Lists) != 0 {
			return fmt.Errorf("%w: manifest of %s: content on a non-file", ErrNotFS, m.Path)
		}
	default:
		return fmt.Errorf("%w: manifest of %s: type %d", ErrNotFS, m.Path, m.Type)
	}
	return nil
}

// CleanPath turns p into the form manifests hold: slash-separated, no
// leading slash, no "." or ".." elements; "" is the root.
func CleanPath(p string) (string, error) {
	if len(p) > MaxPath || strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("%w: %q", ErrBadPath, p)
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return "", fmt.Errorf("%w: %q has a .. element", ErrBadPath, p)
		}
		if len(el) > 255 {
			return "", fmt.Errorf("%w: an element of %q is longer than 255 bytes", ErrBadPath, p)
		}
	}
	c := strings.TrimPrefix(path.Clean("/"+p), "/")
	return c, nil
}
