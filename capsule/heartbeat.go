package capsule

import (
	"crypto/ed25519"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/gdpnet/gdpnet/pdu"
)

// MaxHoles bounds the holes one heartbeat may declare.
const MaxHoles = 4096

// HeartbeatAAD is the COSE external AAD of a heartbeat signature. It
// separates domains the way certs/ does for certificates: a heartbeat
// signature can never pass for a signature over any other gdpnet object.
const HeartbeatAAD = "gdpnet v1 heartbeat"

// Heartbeat is the writer's signed statement about the whole log: "capsule
// Capsule holds Seqno entries whose Merkle root is Root, as of Time".
//
// Holes lists the seqnos this heartbeat newly declares as holes, ascending,
// each above the previous heartbeat's seqno. Epoch counts the writer's
// restarts after losing state; a heartbeat of epoch e > 0 continues the log
// from Base, the head the writer recovered, so entries an older epoch holds
// beyond Base become an abandoned branch rather than equivocation.
type Heartbeat struct {
	Capsule pdu.Name
	Seqno   uint64
	Root    Hash
	Time    int64 // unix nanoseconds
	Holes   []uint64
	Epoch   uint64
	Base    uint64
	Sig     []byte // Ed25519 over the COSE Sig_structure of Body()
}

type hbBody struct {
	Capsule []byte   `cbor:"1,keyasint"`
	Seqno   uint64   `cbor:"2,keyasint"`
	Root    []byte   `cbor:"3,keyasint"`
	Time    uint64   `cbor:"4,keyasint"`
	Holes   []uint64 `cbor:"5,keyasint,omitempty"`
	Epoch   uint64   `cbor:"6,keyasint,omitempty"`
	Base    uint64   `cbor:"7,keyasint,omitempty"`
}

// Body is the canonical CBOR the signature covers.
func (h *Heartbeat) Body() []byte { return h.appendBody(make([]byte, 0, 96+9*len(h.Holes))) }

// appendBody encodes the body by hand (it is on every append's path); the
// tests check it against the library's deterministic encoding of hbBody.
func (h *Heartbeat) appendBody(b []byte) []byte {
	n := uint64(4)
	if len(h.Holes) > 0 {
		n++
	}
	if h.Epoch != 0 {
		n++
	}
	if h.Base != 0 {
		n++
	}
	b = appendHead(b, majMap, n)
	b = appendHead(b, majUint, 1)
	b = appendHead(b, majBytes, HashLen)
	b = append(b, h.Capsule[:]...)
	b = appendHead(b, majUint, 2)
	b = appendHead(b, majUint, h.Seqno)
	b = appendHead(b, majUint, 3)
	b = appendHead(b, majBytes, HashLen)
	b = append(b, h.Root[:]...)
	b = appendHead(b, majUint, 4)
	b = appendHead(b, majUint, uint64(h.Time))
	if len(h.Holes) > 0 {
		b = appendHead(b, majUint, 5)
		b = appendHead(b, majArray, uint64(len(h.Holes)))
		for _, s := range h.Holes {
			b = appendHead(b, majUint, s)
		}
	}
	if h.Epoch != 0 {
		b = appendHead(b, majUint, 6)
		b = appendHead(b, majUint, h.Epoch)
	}
	if h.Base != 0 {
		b = appendHead(b, majUint, 7)
		b = appendHead(b, majUint, h.Base)
	}
	return b
}

// Sign signs h with the writer key.
func (h *Heartbeat) Sign(key ed25519.PrivateKey) {
	h.Sig = ed25519.Sign(key, sigInput(h.Body()))
}

// check validates the fields a heartbeat must satisfy on its own.
func (h *Heartbeat) check() error {
	if h.Time < 0 {
		return fmt.Errorf("heartbeat: %w: negative time", ErrMalformed)
	}
	if len(h.Holes) > MaxHoles {
		return fmt.Errorf("heartbeat: %w: %d holes (max %d)", ErrTooLarge, len(h.Holes), MaxHoles)
	}
	for i, s := range h.Holes {
		if s == 0 || s > h.Seqno || (i > 0 && s <= h.Holes[i-1]) {
			return fmt.Errorf("heartbeat: %w: holes must ascend within 1..%d", ErrMalformed, h.Seqno)
		}
	}
	if h.Base > h.Seqno || (h.Epoch == 0 && h.Base != 0) {
		return fmt.Errorf("heartbeat: %w: base %d with epoch %d and seqno %d", ErrMalformed, h.Base, h.Epoch, h.Seqno)
	}
	if h.Seqno == 0 && h.Root != EmptyRoot {
		return fmt.Errorf("heartbeat: %w: empty log with a non-empty root", ErrMalformed)
	}
	return nil
}

// sigChecks counts heartbeat signature verifications (HeartbeatSigChecks).
var sigChecks atomic.Uint64

// HeartbeatSigChecks is how many heartbeat signatures (ed25519) this
// process has verified: what a reader's verification costs beyond hashing.
func HeartbeatSigChecks() uint64 { return sigChecks.Load() }

// Verify checks the heartbeat's fields and its signature by writer for
// capsule c.
func (h *Heartbeat) Verify(c pdu.Name, writer ed25519.PublicKey) error {
	if h.Capsule != c {
		return fmt.Errorf("heartbeat for %s: %w (want %s)", h.Capsule, ErrWrongCapsule, c)
	}
	if err := h.check(); err != nil {
		return err
	}
	sigChecks.Add(1)
	if len(writer) != ed25519.PublicKeySize || !ed25519.Verify(writer, sigInput(h.Body()), h.Sig) {
		return fmt.Errorf("heartbeat %d: %w", h.Seqno, ErrBadSignature)
	}
	return nil
}

// Marshal returns the wire form, a tagged COSE_Sign1:
// 18([h'a10127', {}, body, signature]).
func (h *Heartbeat) Marshal() []byte { return marshalSign1(h.Body(), h.Sig) }

// Equal reports whether two heartbeats are the same signed statement.
func (h *Heartbeat) Equal(o *Heartbeat) bool {
	return h.Capsule == o.Capsule && h.Seqno == o.Seqno && h.Root == o.Root && h.Time == o.Time &&
		slices.Equal(h.Holes, o.Holes) && h.Epoch == o.Epoch && h.Base == o.Base && string(h.Sig) == string(o.Sig)
}

// UnmarshalHeartbeat decodes the canonical wire form. It checks structure,
// not the signature.
func UnmarshalHeartbeat(b []byte) (*Heartbeat, error) {
	payload, sig, err := unmarshalSign1(b)
	if err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	var body hbBody
	if err := decodeCanonical(payload, &body); err != nil {
		return nil, fmt.Errorf("heartbeat body: %w", err)
	}
	if len(body.Capsule) != HashLen || len(body.Root) != HashLen {
		return nil, fmt.Errorf("heartbeat body: %w: capsule and root must be %d bytes", ErrMalformed, HashLen)
	}
	if body.Time > 1<<63-1 {
		return nil, fmt.Errorf("heartbeat body: %w: time out of range", ErrMalformed)
	}
	h := &Heartbeat{Seqno: body.Seqno, Time: int64(body.Time), Holes: body.Holes, Epoch: body.Epoch, Base: body.Base, Sig: sig}
	copy(h.Capsule[:], body.Capsule)
	copy(h.Root[:], body.Root)
	if len(h.Holes) == 0 {
		h.Holes = nil
	}
	if err := h.check(); err != nil {
		return nil, err
	}
	return h, nil
}
