package seal

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"

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
	key    ed25519.PrivateKey
	rd     RecordReader

	mu   sync.Mutex
	keys map[uint64]epochKey // by key record seqno
}

type epochKey struct {
	epoch   uint64
	ck      []byte // nil: no wrap for this reader
	readers []ed25519.PublicKey
}

// NewOpener opens records of rd's capsule with the reader's identity key.
func NewOpener(rd RecordReader, key ed25519.PrivateKey) *Opener {
	info := rd.Info()
	return &Opener{c: info.Name, writer: info.Writer, key: key, rd: rd, keys: map[uint64]epochKey{}}
}

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
	pt, err := openData(o.c, ek.ck, env)
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
	ek, ok := o.keys[keySeq]
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
		me := o.key.Public().(ed25519.PublicKey)
		for _, w := range env.Wraps {
			ek.readers = append(ek.readers, ed25519.PublicKey(w.Reader))
			if bytes.Equal(w.Reader, me) {
				if ek.ck, err = unwrap(w, o.key, o.c, env.Epoch); err != nil {
					return epochKey{}, fmt.Errorf("key record %d: %w", keySeq, err)
				}
			}
		}
		o.mu.Lock()
		o.keys[keySeq] = ek
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
