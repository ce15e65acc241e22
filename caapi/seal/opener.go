package seal

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/pdu"
)

// RecordReader reads verified entries of one capsule: a *client.Reader.
type RecordReader interface {
	Info() capsule.Info
	Read(ctx context.Context, from, to uint64) ([]capsule.Record, error)
}

// ErrNotData: the record is a key record, not a sealed payload.
var ErrNotData = errors.New("seal: a key record, not a payload")

// Opener is a reader's side of an encrypted capsule: it opens sealed
// records with the content keys wrapped for the reader's key, fetching
// (through the verified reader) and checking each epoch's key record once.
// Safe for concurrent use.
type Opener struct {
	c      pdu.Name
	writer ed25519.PublicKey
	keys   []ed25519.PrivateKey // the reader's keys: the first with a wrap opens
	rd     RecordReader

	mu     sync.Mutex
	epochs map[uint64]epochKey // by key record seqno
}

type epochKey struct {
	epoch   uint64
	ck      []byte      // nil: no wrap for this reader
	aead    cipher.AEAD // XChaCha20-Poly1305 under ck, made once per epoch
	readers []ed25519.PublicKey
}

// NewOpener opens records of rd's capsule with the reader's identity key.
func NewOpener(rd RecordReader, key ed25519.PrivateKey) *Opener {
	return NewOpenerKeys(rd, key)
}

// NewOpenerKeys opens records with whichever of keys an epoch's key record
// wraps the content key for (a gateway holding several of its user's
// keys). With no key it opens nothing (every payload: ErrNoKey).
func NewOpenerKeys(rd RecordReader, keys ...ed25519.PrivateKey) *Opener {
	info := rd.Info()
	return &Opener{c: info.Name, writer: info.Writer, keys: keys, rd: rd, epochs: map[uint64]epochKey{}}
}

// Epoch returns the epoch of a sealed record and the seqno of its key
// record (its own seqno for a key record), without opening it.
func Epoch(r capsule.Record) (epoch, keySeq uint64, isKeys bool, err error) {
	if r.Hole {
		return 0, 0, false, fmt.Errorf("%w: a hole", ErrMalformed)
	}
	env, err := decodeEnvelope(r.Data)
	if err != nil {
		return 0, 0, false, err
	}
	if env.Kind == KindKeys {
		return env.Epoch, r.Seqno, true, nil
	}
	return env.Epoch, env.KeySeq, false, nil
}

// KeyInfo is what a key record says in the clear: its epoch, where it is
// and the Ed25519 keys of the epoch's readers (the writer's included).
type KeyInfo struct {
	Epoch   uint64
	KeySeq  uint64
	Readers []ed25519.PublicKey
}

// ReadKeyRecord reads and checks (the writer's signature) the key record
// at keySeq of rd's capsule.
func ReadKeyRecord(ctx context.Context, rd RecordReader, keySeq uint64) (KeyInfo, error) {
	info := rd.Info()
	recs, err := rd.Read(ctx, keySeq, keySeq)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("key record %d: %w", keySeq, err)
	}
	if len(recs) != 1 || recs[0].Seqno != keySeq || recs[0].Hole {
		return KeyInfo{}, fmt.Errorf("%w: no key record at %d", ErrMalformed, keySeq)
	}
	env, err := decodeEnvelope(recs[0].Data)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("key record %d: %w", keySeq, err)
	}
	if env.Kind != KindKeys {
		return KeyInfo{}, fmt.Errorf("%w: entry %d is not a key record", ErrMalformed, keySeq)
	}
	if err := verifyKeyRecord(info.Name, info.Writer, env); err != nil {
		return KeyInfo{}, fmt.Errorf("key record %d: %w", keySeq, err)
	}
	ki := KeyInfo{Epoch: env.Epoch, KeySeq: keySeq}
	for _, w := range env.Wraps {
		ki.Readers = append(ki.Readers, ed25519.PublicKey(w.Reader))
	}
	return ki, nil
}

// Current finds the newest epoch of rd's capsule up to seqno head: the
// newest record names its key record, which is read and checked. A
// capsule with nothing written yet has none (ErrNotSealed); one whose
// newest record is no sealed envelope is not an encrypted capsule
// (ErrMalformed).
func Current(ctx context.Context, rd RecordReader, head uint64) (KeyInfo, error) {
	for to := head; to > 0; {
		from := max(1, to-min(to, 63))
		entries, err := rd.Read(ctx, from, to)
		if err != nil {
			return KeyInfo{}, err
		}
		for i := len(entries) - 1; i >= 0; i-- {
			if entries[i].Hole {
				continue
			}
			_, keySeq, _, err := Epoch(entries[i])
			if err != nil {
				return KeyInfo{}, fmt.Errorf("entry %d: %w", entries[i].Seqno, err)
			}
			return ReadKeyRecord(ctx, rd, keySeq)
		}
		to = from - 1
	}
	return KeyInfo{}, ErrNotSealed
}

// ErrNotSealed: the capsule holds no sealed record yet.
var ErrNotSealed = errors.New("seal: no key record yet")

// Open returns the plaintext of a verified sealed record. It fails with
// ErrNoKey when this reader is not a reader of the record's epoch,
// ErrNotData for a key record, ErrDecrypt for a payload that does not open.
func (o *Opener) Open(ctx context.Context, r capsule.Record) ([]byte, error) {
	if r.Hole {
		return nil, fmt.Errorf("open %s entry %d: %w: a hole", o.c, r.Seqno, ErrMalformed)
	}
	env, err := decodeEnvelope(r.Data)
	if err != nil {
		return nil, fmt.Errorf("open %s entry %d: %w", o.c, r.Seqno, err)
	}
	if env.Kind == KindKeys {
		return nil, fmt.Errorf("open %s entry %d: %w", o.c, r.Seqno, ErrNotData)
	}
	if env.KeySeq >= r.Seqno {
		return nil, fmt.Errorf("open %s entry %d: %w: key record %d is not before it", o.c, r.Seqno, ErrMalformed, env.KeySeq)
	}
	ek, err := o.epochKey(ctx, env.Epoch, env.KeySeq)
	if err != nil {
		return nil, fmt.Errorf("open %s entry %d: %w", o.c, r.Seqno, err)
	}
	pt, err := openWith(ek.aead, o.c, env)
	if err != nil {
		return nil, fmt.Errorf("open %s entry %d: %w", o.c, r.Seqno, err)
	}
	return pt, nil
}

// Transform is Open for kv.Options.Transform: key records carry no KV
// record (empty data, skipped by the index).
func (o *Opener) Transform(ctx context.Context, r capsule.Record) ([]byte, error) {
	pt, err := o.Open(ctx, r)
	if errors.Is(err, ErrNotData) {
		return nil, nil
	}
	return pt, err
}

// epochKey returns the content key of epoch from its key record at
// keySeq, read and checked once.
func (o *Opener) epochKey(ctx context.Context, epoch, keySeq uint64) (epochKey, error) {
	o.mu.Lock()
	ek, ok := o.epochs[keySeq]
	o.mu.Unlock()
	if !ok {
		recs, err := o.rd.Read(ctx, keySeq, keySeq)
		if err != nil {
			return epochKey{}, fmt.Errorf("key record %d: %w", keySeq, err)
		}
		if len(recs) != 1 || recs[0].Seqno != keySeq || recs[0].Hole {
			return epochKey{}, fmt.Errorf("%w: no key record at %d", ErrMalformed, keySeq)
		}
		env, err := decodeEnvelope(recs[0].Data)
		if err != nil {
			return epochKey{}, fmt.Errorf("key record %d: %w", keySeq, err)
		}
		if env.Kind != KindKeys {
			return epochKey{}, fmt.Errorf("%w: entry %d is not a key record", ErrMalformed, keySeq)
		}
		if err := verifyKeyRecord(o.c, o.writer, env); err != nil {
			return epochKey{}, fmt.Errorf("key record %d: %w", keySeq, err)
		}
		ek = epochKey{epoch: env.Epoch}
		for _, w := range env.Wraps {
			ek.readers = append(ek.readers, ed25519.PublicKey(w.Reader))
			for _, k := range o.keys {
				if ek.ck == nil && bytes.Equal(w.Reader, k.Public().(ed25519.PublicKey)) {
					if ek.ck, err = unwrap(w, k, o.c, env.Epoch); err != nil {
						return epochKey{}, fmt.Errorf("key record %d: %w", keySeq, err)
					}
				}
			}
		}
		if ek.ck != nil {
			if ek.aead, err = chacha20poly1305.NewX(ek.ck); err != nil {
				return epochKey{}, fmt.Errorf("key record %d: %w", keySeq, err)
			}
		}
		o.mu.Lock()
		o.epochs[keySeq] = ek
		o.mu.Unlock()
	}
	if ek.epoch != epoch {
		return epochKey{}, fmt.Errorf("%w: a record of epoch %d names the key record of epoch %d", ErrMalformed, epoch, ek.epoch)
	}
	if ek.ck == nil {
		return epochKey{}, fmt.Errorf("%w: epoch %d (key record %d) is not sealed for this reader", ErrNoKey, epoch, keySeq)
	}
	return ek, nil
}
