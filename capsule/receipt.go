package capsule

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/gdpnet/gdpnet/pdu"
)

// ReceiptAAD is the COSE external AAD of a durability receipt.
const ReceiptAAD = "gdpnet v1 receipt"

// ErrBadReceipt: a receipt that does not verify, or does not match the
// batch it is offered for.
var ErrBadReceipt = errors.New("bad durability receipt")

// Receipt is a capsule server's signed statement "server Server holds
// capsule Capsule durably up to the heartbeat of seqno Seqno whose wire
// form hashes to Heartbeat". A server signs one with its own key after the
// fsync that covers the batch; a writer counts it toward its write quorum
// only when the key is the one of a server the capsule's owner placed the
// capsule on (an AdCert), so no other party can claim durability for it.
type Receipt struct {
	Capsule   pdu.Name
	Seqno     uint64
	Heartbeat Hash // SHA-256 of the heartbeat's wire form (Heartbeat.Digest)
	Server    pdu.Name
	Sig       []byte // Ed25519 by the server's key over the COSE Sig_structure
}

type receiptBody struct {
	Capsule   []byte `cbor:"1,keyasint"`
	Seqno     uint64 `cbor:"2,keyasint"`
	Heartbeat []byte `cbor:"3,keyasint"`
	Server    []byte `cbor:"4,keyasint"`
}

// Digest is the SHA-256 of the heartbeat's wire form: what a receipt
// names, so a receipt for one fork of a log never counts for another.
func (h *Heartbeat) Digest() Hash { return sha256.Sum256(h.Marshal()) }

// Body is the canonical CBOR the signature covers.
func (r *Receipt) Body() []byte {
	b := make([]byte, 0, 120)
	b = appendHead(b, majMap, 4)
	b = appendHead(b, majUint, 1)
	b = appendHead(b, majBytes, HashLen)
	b = append(b, r.Capsule[:]...)
	b = appendHead(b, majUint, 2)
	b = appendHead(b, majUint, r.Seqno)
	b = appendHead(b, majUint, 3)
	b = appendHead(b, majBytes, HashLen)
	b = append(b, r.Heartbeat[:]...)
	b = appendHead(b, majUint, 4)
	b = appendHead(b, majBytes, HashLen)
	return append(b, r.Server[:]...)
}

// NewReceipt signs a receipt for heartbeat hb of capsule c held by server
// with the server's key.
func NewReceipt(hb *Heartbeat, server pdu.Name, key ed25519.PrivateKey) *Receipt {
	r := &Receipt{Capsule: hb.Capsule, Seqno: hb.Seqno, Heartbeat: hb.Digest(), Server: server}
	r.Sig = ed25519.Sign(key, sigInputAAD(ReceiptAAD, r.Body()))
	return r
}

// Marshal returns the wire form, a tagged COSE_Sign1.
func (r *Receipt) Marshal() []byte { return marshalSign1(r.Body(), r.Sig) }

// UnmarshalReceipt decodes the canonical wire form. It checks structure,
// not the signature.
func UnmarshalReceipt(b []byte) (*Receipt, error) {
	payload, sig, err := unmarshalSign1(b)
	if err != nil {
		return nil, fmt.Errorf("receipt: %w", err)
	}
	var body receiptBody
	if err := decodeCanonical(payload, &body); err != nil {
		return nil, fmt.Errorf("receipt body: %w", err)
	}
	if len(body.Capsule) != HashLen || len(body.Heartbeat) != HashLen || len(body.Server) != HashLen {
		return nil, fmt.Errorf("receipt body: %w: names and hashes must be %d bytes", ErrMalformed, HashLen)
	}
	r := &Receipt{Seqno: body.Seqno, Sig: sig}
	copy(r.Capsule[:], body.Capsule)
	copy(r.Heartbeat[:], body.Heartbeat)
	copy(r.Server[:], body.Server)
	if !bytes.Equal(r.Marshal(), b) {
		return nil, fmt.Errorf("receipt: %w: not the canonical encoding", ErrMalformed)
	}
	return r, nil
}

// Verify checks that r is server's receipt for heartbeat hb, signed with
// the server's key.
func (r *Receipt) Verify(hb *Heartbeat, server pdu.Name, key ed25519.PublicKey) error {
	switch {
	case r.Capsule != hb.Capsule:
		return fmt.Errorf("%w: for capsule %s, want %s", ErrBadReceipt, r.Capsule, hb.Capsule)
	case r.Server != server:
		return fmt.Errorf("%w: names server %s, want %s", ErrBadReceipt, r.Server, server)
	case r.Seqno != hb.Seqno || r.Heartbeat != hb.Digest():
		return fmt.Errorf("%w: for heartbeat %d %s, want %d", ErrBadReceipt, r.Seqno, r.Heartbeat, hb.Seqno)
	case len(key) != ed25519.PublicKeySize || !ed25519.Verify(key, sigInputAAD(ReceiptAAD, r.Body()), r.Sig):
		return fmt.Errorf("%w: signature does not verify under server %s's key", ErrBadReceipt, server)
	}
	return nil
}
