package seal

import (
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/gdpnet/gdpnet/internal/detcbor"
	"github.com/gdpnet/gdpnet/pdu"
)

// Envelope kinds (docs/PROTOCOL.md §11).
const (
	KindData = 1 // a sealed payload
	KindKeys = 2 // a key record: the epoch's content key wrapped per reader
)

// MaxReaders bounds the readers of one key record.
const MaxReaders = 256

// Overhead is what sealing adds to a payload at most: the envelope's
// framing, epoch, key-record seqno, nonce and tag.
const Overhead = 80

// Errors callers branch on.
var (
	// ErrNoKey: this reader holds no key for the record: it is not (or no
	// longer) an authorised reader of the record's epoch.
	ErrNoKey = errors.New("seal: no content key for this reader")
	// ErrMalformed: an envelope or key record that does not decode.
	ErrMalformed = errors.New("seal: malformed sealed record")
	// ErrBadSignature: a key record not signed by the capsule's writer.
	ErrBadSignature = errors.New("seal: key record signature does not verify")
	// ErrDecrypt: a sealed payload that does not open under the epoch's
	// content key (tampered, or sealed under another key).
	ErrDecrypt = errors.New("seal: payload does not decrypt")
)

var codec = detcbor.Must(detcbor.Limits{MaxArrayElements: MaxReaders, MaxMapPairs: 16, MaxNestedLevels: 4})

// envelope is every sealed capsule's record data.
type envelope struct {
	Kind  uint64 `cbor:"1,keyasint"`
	Epoch uint64 `cbor:"2,keyasint"`
	// Data: the seqno of the epoch's key record, the nonce (unique per
	// content key), the ciphertext.
	KeySeq uint64 `cbor:"3,keyasint,omitempty"`
	Nonce  []byte `cbor:"4,keyasint,omitempty"`
	Sealed []byte `cbor:"5,keyasint,omitempty"`
	// Keys: one wrap per reader, and the writer's signature over the rest.
	Wraps []wrap `cbor:"6,keyasint,omitempty"`
	Sig   []byte `cbor:"7,keyasint,omitempty"`
}

// wrap is the content key wrapped for one reader.
type wrap struct {
	_       struct{} `cbor:",toarray"`
	Reader  []byte   // the reader's Ed25519 public key
	Eph     []byte   // the ephemeral X25519 public key
	Wrapped []byte   // XChaCha20-Poly1305 of the content key
}

func (e *envelope) check() error {
	switch e.Kind {
	case KindData:
		if e.KeySeq == 0 || len(e.Nonce) != chacha20poly1305.NonceSizeX || len(e.Sealed) < chacha20poly1305.Overhead ||
			e.Wraps != nil || e.Sig != nil {
			return fmt.Errorf("%w: data envelope fields", ErrMalformed)
		}
	case KindKeys:
		if e.KeySeq != 0 || e.Nonce != nil || e.Sealed != nil || len(e.Sig) != ed25519.SignatureSize ||
			len(e.Wraps) == 0 || len(e.Wraps) > MaxReaders {
			return fmt.Errorf("%w: key record fields", ErrMalformed)
		}
		for _, w := range e.Wraps {
			if len(w.Reader) != ed25519.PublicKeySize || len(w.Eph) != 32 || len(w.Wrapped) != 32+chacha20poly1305.Overhead {
				return fmt.Errorf("%w: a wrap's fields", ErrMalformed)
			}
		}
	default:
		return fmt.Errorf("%w: kind %d", ErrMalformed, e.Kind)
	}
	if e.Epoch == 0 {
		return fmt.Errorf("%w: epoch 0", ErrMalformed)
	}
	return nil
}

func decodeEnvelope(b []byte) (*envelope, error) {
	var e envelope
	if err := codec.UnmarshalStrict(b, &e); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err := e.check(); err != nil {
		return nil, err
	}
	return &e, nil
}

// Domain separation of every key, nonce and signature input.
const (
	dataAAD   = "gdpnet seal v1 data\x00"
	wrapInfo  = "gdpnet seal v1 wrap\x00"
	keysSigIn = "gdpnet seal v1 keys\x00"
)

// dataAD binds a sealed payload to its capsule and epoch.
func dataAD(c pdu.Name, epoch uint64) []byte {
	b := append([]byte(dataAAD), c[:]...)
	return binary.BigEndian.AppendUint64(b, epoch)
}

// sealData seals plaintext with aead (the epoch's content key) under nonce
// for epoch (key record at keySeq) of capsule c. It encodes the envelope by
// hand, the ciphertext sealed in place (it is on every append's path);
// TestSealDataEncoding checks it against the library's encoding.
func sealData(c pdu.Name, aead cipher.AEAD, epoch, keySeq uint64, nonce, plaintext []byte) []byte {
	n := len(plaintext) + chacha20poly1305.Overhead
	b := make([]byte, 0, 48+chacha20poly1305.NonceSizeX+n)
	b = detcbor.AppendHead(b, 5, 5) // map of 5
	b = append(b, 0x01, KindData)   // 1: kind
	b = append(b, 0x02)
	b = detcbor.AppendHead(b, 0, epoch) // 2: epoch
	b = append(b, 0x03)
	b = detcbor.AppendHead(b, 0, keySeq) // 3: key seqno
	b = append(b, 0x04)
	b = detcbor.AppendHead(b, 2, uint64(len(nonce))) // 4: nonce
	b = append(b, nonce...)
	b = append(b, 0x05)
	b = detcbor.AppendHead(b, 2, uint64(n)) // 5: sealed
	return aead.Seal(b, nonce, plaintext, dataAD(c, epoch))
}

// openData opens a data envelope with content key ck.
func openData(c pdu.Name, ck []byte, e *envelope) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(ck)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return openWith(aead, c, e)
}

// openWith opens a data envelope with the epoch's AEAD.
func openWith(aead cipher.AEAD, c pdu.Name, e *envelope) ([]byte, error) {
	pt, err := aead.Open(nil, e.Nonce, e.Sealed, dataAD(c, e.Epoch))
	if err != nil {
		return nil, fmt.Errorf("%w (epoch %d)", ErrDecrypt, e.Epoch)
	}
	return pt, nil
}

// kek derives the key that wraps a content key for one reader.
func kek(shared, eph, readerX []byte, c pdu.Name, epoch uint64) ([]byte, error) {
	salt := append(append([]byte(nil), eph...), readerX...)
	info := binary.BigEndian.AppendUint64(append([]byte(wrapInfo), c[:]...), epoch)
	return hkdf.Key(sha256.New, shared, salt, string(info), chacha20poly1305.KeySize)
}

// wrapFor wraps ck for reader (an Ed25519 public key) with a fresh
// ephemeral X25519 key.
func wrapFor(reader ed25519.PublicKey, ck []byte, c pdu.Name, epoch uint64) (wrap, error) {
	rx, err := X25519Public(reader)
	if err != nil {
		return wrap{}, err
	}
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return wrap{}, fmt.Errorf("seal: %w", err)
	}
	shared, err := eph.ECDH(rx)
	if err != nil {
		return wrap{}, fmt.Errorf("seal: %w", err)
	}
	k, err := kek(shared, eph.PublicKey().Bytes(), rx.Bytes(), c, epoch)
	if err != nil {
		return wrap{}, fmt.Errorf("seal: %w", err)
	}
	aead, err := chacha20poly1305.NewX(k)
	if err != nil {
		return wrap{}, fmt.Errorf("seal: %w", err)
	}
	// The KEK is fresh for every wrap (a new ephemeral key), so a fixed
	// nonce is safe.
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	return wrap{Reader: append([]byte(nil), reader...), Eph: eph.PublicKey().Bytes(),
		Wrapped: aead.Seal(nil, nonce, ck, reader)}, nil
}

// unwrap recovers the content key from w with the reader's private key.
func unwrap(w wrap, key ed25519.PrivateKey, c pdu.Name, epoch uint64) ([]byte, error) {
	x, err := X25519Private(key)
	if err != nil {
		return nil, err
	}
	eph, err := ecdh.X25519().NewPublicKey(w.Eph)
	if err != nil {
		return nil, fmt.Errorf("%w: ephemeral key: %w", ErrMalformed, err)
	}
	shared, err := x.ECDH(eph)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	k, err := kek(shared, w.Eph, x.PublicKey().Bytes(), c, epoch)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	aead, err := chacha20poly1305.NewX(k)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	ck, err := aead.Open(nil, make([]byte, chacha20poly1305.NonceSizeX), w.Wrapped, w.Reader)
	if err != nil {
		return nil, fmt.Errorf("%w: the wrap for this reader does not open (epoch %d)", ErrDecrypt, epoch)
	}
	return ck, nil
}

// keysSigInput is what the writer signs in a key record: the domain, the
// capsule and the record's encoding without the signature.
func keysSigInput(c pdu.Name, e *envelope) ([]byte, error) {
	u := *e
	u.Sig = nil
	b, err := codec.Marshal(&u)
	if err != nil {
		return nil, err
	}
	return append(append([]byte(keysSigIn), c[:]...), b...), nil
}

// newKeyRecord builds and signs the key record of epoch for readers.
func newKeyRecord(c pdu.Name, writer ed25519.PrivateKey, epoch uint64, ck []byte, readers []ed25519.PublicKey) ([]byte, error) {
	e := &envelope{Kind: KindKeys, Epoch: epoch}
	for _, r := range readers {
		w, err := wrapFor(r, ck, c, epoch)
		if err != nil {
			return nil, err
		}
		e.Wraps = append(e.Wraps, w)
	}
	in, err := keysSigInput(c, e)
	if err != nil {
		return nil, err
	}
	e.Sig = ed25519.Sign(writer, in)
	return codec.Marshal(e)
}

// verifyKeyRecord checks a key record's signature by the capsule's writer.
func verifyKeyRecord(c pdu.Name, writer ed25519.PublicKey, e *envelope) error {
	in, err := keysSigInput(c, e)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !ed25519.Verify(writer, in, e.Sig) {
		return fmt.Errorf("%w (epoch %d)", ErrBadSignature, e.Epoch)
	}
	return nil
}
