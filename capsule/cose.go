package capsule

import (
	"bytes"
	"crypto/ed25519"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// Heartbeats are COSE_Sign1 objects (RFC 9052 §4.2) with EdDSA, encoded
// exactly as certs/ encodes certificates: tag 18, protected header {1: -8},
// an empty unprotected map, the payload and the signature. The signature
// covers ["Signature1", protected, external_aad, payload].

const tagSign1 = 0xd2 // CBOR tag 18, one byte

var protectedEdDSA = []byte{0xa1, 0x01, 0x27}

type sign1Wire struct {
	_           struct{} `cbor:",toarray"`
	Protected   []byte
	Unprotected cbor.RawMessage
	Payload     []byte
	Signature   []byte
}

// sigInput is the Sig_structure a heartbeat signature covers:
// ["Signature1", h'a10127', "gdpnet v1 heartbeat" as bstr, payload].
func sigInput(payload []byte) []byte { return sigInputAAD(HeartbeatAAD, payload) }

// sigInputAAD is the Sig_structure of a COSE_Sign1 with external AAD aad:
// each signed kind (heartbeat, receipt, placement) has its own, so no
// signature passes for another kind's.
func sigInputAAD(aad string, payload []byte) []byte {
	b := make([]byte, 0, 40+len(payload))
	b = appendHead(b, majArray, 4)
	b = appendHead(b, majText, uint64(len("Signature1")))
	b = append(b, "Signature1"...)
	b = appendHead(b, majBytes, uint64(len(protectedEdDSA)))
	b = append(b, protectedEdDSA...)
	b = appendHead(b, majBytes, uint64(len(aad)))
	b = append(b, aad...)
	b = appendHead(b, majBytes, uint64(len(payload)))
	return append(b, payload...)
}

// marshalSign1 encodes 18([h'a10127', {}, payload, sig]).
func marshalSign1(payload, sig []byte) []byte {
	b := make([]byte, 0, 16+len(payload)+len(sig))
	b = append(b, tagSign1)
	b = appendHead(b, majArray, 4)
	b = appendHead(b, majBytes, uint64(len(protectedEdDSA)))
	b = append(b, protectedEdDSA...)
	b = appendHead(b, majMap, 0)
	b = appendHead(b, majBytes, uint64(len(payload)))
	b = append(b, payload...)
	b = appendHead(b, majBytes, uint64(len(sig)))
	return append(b, sig...)
}

func unmarshalSign1(b []byte) (payload, sig []byte, err error) {
	if len(b) == 0 || b[0] != tagSign1 {
		return nil, nil, fmt.Errorf("%w: not a tagged COSE_Sign1 (want tag 18)", ErrMalformed)
	}
	var s sign1Wire
	if err := codec.Unmarshal(b[1:], &s); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if !bytes.Equal(s.Protected, protectedEdDSA) {
		return nil, nil, fmt.Errorf("%w: protected header %x, want %x (alg EdDSA)", ErrMalformed, s.Protected, protectedEdDSA)
	}
	if !bytes.Equal(s.Unprotected, []byte{0xa0}) {
		return nil, nil, fmt.Errorf("%w: unprotected header must be empty", ErrMalformed)
	}
	if len(s.Signature) != ed25519.SignatureSize {
		return nil, nil, fmt.Errorf("%w: signature of %d bytes", ErrMalformed, len(s.Signature))
	}
	if !bytes.Equal(marshalSign1(s.Payload, s.Signature), b) {
		return nil, nil, fmt.Errorf("%w: not the canonical encoding", ErrMalformed)
	}
	return bytes.Clone(s.Payload), bytes.Clone(s.Signature), nil
}
