package capsule

import (
	"fmt"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
)

// ErrNotCapsule: metadata that is valid but not a capsule's.
var ErrNotCapsule = fmt.Errorf("metadata is not a capsule's")

// InfoOf returns the verification info of capsule metadata m: its name
// (the hash of the metadata) and its writer key.
func InfoOf(m *certs.Metadata) (Info, error) {
	if m == nil || m.Kind != certs.KindCapsule {
		return Info{}, fmt.Errorf("capsule info: %w", ErrNotCapsule)
	}
	i := Info{Name: m.Name(), Writer: m.WriterKey}
	if err := i.Check(); err != nil {
		return Info{}, err
	}
	return i, nil
}

// ParseInfo parses canonical capsule metadata and checks that it hashes to
// name: the self-certifying check every server and reader makes before
// trusting a writer key.
func ParseInfo(name pdu.Name, meta []byte) (Info, error) {
	m, err := certs.ParseMetadata(meta)
	if err != nil {
		return Info{}, fmt.Errorf("capsule %s metadata: %w", name, err)
	}
	i, err := InfoOf(m)
	if err != nil {
		return Info{}, fmt.Errorf("capsule %s: %w", name, err)
	}
	if i.Name != name {
		return Info{}, fmt.Errorf("capsule %s: %w: metadata hashes to %s", name, ErrWrongCapsule, i.Name)
	}
	return i, nil
}
