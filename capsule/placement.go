package capsule

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
)

// PlacementAAD is the COSE external AAD of a placement record.
const PlacementAAD = "gdpnet v1 placement"

// MaxReplicas bounds a placement's replica set.
const MaxReplicas = 16

// ErrBadPlacement: a placement record that does not verify under the
// capsule's owner key, or whose fields are out of range.
var ErrBadPlacement = errors.New("bad placement record")

// Placement is the owner's signed statement "capsule Capsule lives on
// Replicas, and a record is durable once W of them hold it", issued at
// Issued (a newer record replaces an older one). Writers take the replica
// set and the write quorum from it, never from a server's word.
type Placement struct {
	Capsule  pdu.Name
	Replicas []pdu.Name
	W        int
	Issued   time.Time // second precision
	Sig      []byte    // Ed25519 by the capsule's owner key
}

type placementBody struct {
	Capsule  []byte   `cbor:"1,keyasint"`
	Replicas [][]byte `cbor:"2,keyasint"`
	W        uint64   `cbor:"3,keyasint"`
	Issued   uint64   `cbor:"4,keyasint"`
}

// Body is the canonical CBOR the signature covers.
func (p *Placement) Body() []byte {
	b := make([]byte, 0, 48+34*len(p.Replicas))
	b = appendHead(b, majMap, 4)
	b = appendHead(b, majUint, 1)
	b = appendHead(b, majBytes, HashLen)
	b = append(b, p.Capsule[:]...)
	b = appendHead(b, majUint, 2)
	b = appendHead(b, majArray, uint64(len(p.Replicas)))
	for _, r := range p.Replicas {
		b = appendHead(b, majBytes, HashLen)
		b = append(b, r[:]...)
	}
	b = appendHead(b, majUint, 3)
	b = appendHead(b, majUint, uint64(p.W))
	b = appendHead(b, majUint, 4)
	return appendHead(b, majUint, uint64(p.Issued.Unix()))
}

// SignPlacement issues the placement record of the capsule described by
// meta with its owner key: replicas, and w of them for durability (0: a
// majority).
func SignPlacement(owner ed25519.PrivateKey, meta *certs.Metadata, replicas []pdu.Name, w int, issued time.Time) (*Placement, error) {
	if w == 0 {
		w = len(replicas)/2 + 1
	}
	p := &Placement{Capsule: meta.Name(), Replicas: append([]pdu.Name(nil), replicas...), W: w, Issued: issued.UTC().Truncate(time.Second)}
	if err := p.check(); err != nil {
		return nil, err
	}
	if len(owner) != ed25519.PrivateKeySize || !bytes.Equal(owner.Public().(ed25519.PublicKey), meta.Key) {
		return nil, fmt.Errorf("sign placement of %s: %w: not the capsule's owner key", p.Capsule, ErrBadPlacement)
	}
	p.Sig = ed25519.Sign(owner, sigInputAAD(PlacementAAD, p.Body()))
	return p, nil
}

func (p *Placement) check() error {
	switch {
	case len(p.Replicas) == 0 || len(p.Replicas) > MaxReplicas:
		return fmt.Errorf("%w: %d replicas (want 1 to %d)", ErrBadPlacement, len(p.Replicas), MaxReplicas)
	case p.W < 1 || p.W > len(p.Replicas):
		return fmt.Errorf("%w: w %d of %d replicas", ErrBadPlacement, p.W, len(p.Replicas))
	case p.Issued.Unix() < 0:
		return fmt.Errorf("%w: issue time out of range", ErrBadPlacement)
	}
	seen := make(map[pdu.Name]bool, len(p.Replicas))
	for _, r := range p.Replicas {
		if seen[r] {
			return fmt.Errorf("%w: replica %s listed twice", ErrBadPlacement, r)
		}
		seen[r] = true
	}
	return nil
}

// Marshal returns the wire form, a tagged COSE_Sign1.
func (p *Placement) Marshal() []byte { return marshalSign1(p.Body(), p.Sig) }

// Holds reports whether server is one of the replicas.
func (p *Placement) Holds(server pdu.Name) bool {
	for _, r := range p.Replicas {
		if r == server {
			return true
		}
	}
	return false
}

// UnmarshalPlacement decodes the canonical wire form. It checks structure,
// not the signature (Verify does, with the capsule's metadata).
func UnmarshalPlacement(b []byte) (*Placement, error) {
	payload, sig, err := unmarshalSign1(b)
	if err != nil {
		return nil, fmt.Errorf("placement: %w", err)
	}
	var body placementBody
	if err := decodeCanonical(payload, &body); err != nil {
		return nil, fmt.Errorf("placement body: %w", err)
	}
	if len(body.Capsule) != HashLen || body.W > MaxReplicas || body.Issued > 1<<62 {
		return nil, fmt.Errorf("placement body: %w: field out of range", ErrMalformed)
	}
	p := &Placement{W: int(body.W), Issued: time.Unix(int64(body.Issued), 0).UTC(), Sig: sig}
	copy(p.Capsule[:], body.Capsule)
	if len(body.Replicas) > MaxReplicas {
		return nil, fmt.Errorf("placement body: %w: %d replicas", ErrMalformed, len(body.Replicas))
	}
	for _, r := range body.Replicas {
		if len(r) != HashLen {
			return nil, fmt.Errorf("placement body: %w: replica name of %d bytes", ErrMalformed, len(r))
		}
		p.Replicas = append(p.Replicas, pdu.Name(r))
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	if !bytes.Equal(p.Marshal(), b) {
		return nil, fmt.Errorf("placement: %w: not the canonical encoding", ErrMalformed)
	}
	return p, nil
}

// Verify checks that p is signed by the owner of the capsule meta
// describes (meta must hash to p.Capsule).
func (p *Placement) Verify(meta *certs.Metadata) error {
	if meta == nil || meta.Name() != p.Capsule {
		return fmt.Errorf("%w: metadata is not capsule %s's", ErrBadPlacement, p.Capsule)
	}
	if err := p.check(); err != nil {
		return err
	}
	if len(meta.Key) != ed25519.PublicKeySize || !ed25519.Verify(meta.Key, sigInputAAD(PlacementAAD, p.Body()), p.Sig) {
		return fmt.Errorf("%w: not signed by the owner of %s", ErrBadPlacement, p.Capsule)
	}
	return nil
}
