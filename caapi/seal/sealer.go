package seal

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/pdu"
)

// Appender is what a Sealer writes through: a *client.Writer.
type Appender interface {
	Name() pdu.Name
	Seqno() uint64
	AppendRecord(ctx context.Context, data []byte) (capsule.Record, error)
}

// ErrReaders: a change of the reader set refused before anything was
// written (the writer removing itself, too many readers, a key that is
// no usable reader key).
var ErrReaders = errors.New("seal: reader set refused")

// Sealer is the writer side of an encrypted capsule: it seals every payload
// under the current epoch's content key and writes the key records. Every
// change of the reader set (AddReader, RemoveReader) starts a new epoch
// with a fresh content key, wrapped for the readers of the new set only:
// a removed reader cannot read what is written after its removal, and an
// added reader reads from its addition on. The writer is always a reader
// of its own capsule (so a restarted writer recovers the key). Safe for
// concurrent use.
type Sealer struct {
	app Appender
	c   pdu.Name
	key ed25519.PrivateKey

	mu      sync.Mutex
	epoch   uint64
	keySeq  uint64 // the current epoch's key record
	ck      []byte
	aead    cipher.AEAD                       // XChaCha20-Poly1305 under ck
	nonce   [chacha20poly1305.NonceSizeX]byte // 16 random bytes per epoch (and per resume), then a counter
	count   uint64
	readers []ed25519.PublicKey // sorted, the writer's own key included
}

// NewSealer starts sealing capsule app.Name() for readers: it writes the
// first key record (epoch 1). key is the capsule's writer key.
func NewSealer(ctx context.Context, app Appender, key ed25519.PrivateKey, readers ...ed25519.PublicKey) (*Sealer, error) {
	s := &Sealer{app: app, c: app.Name(), key: key}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.rotateLocked(ctx, readers); err != nil {
		return nil, err
	}
	return s, nil
}

// ResumeSealer continues a sealed capsule after the writer restarted: it
// reads back from the head (through rd, verified) to the newest key record
// and recovers its content key with the writer key. With no key record it
// starts epoch 1 for readers, as NewSealer does.
func ResumeSealer(ctx context.Context, app Appender, rd RecordReader, key ed25519.PrivateKey, readers ...ed25519.PublicKey) (*Sealer, error) {
	s := &Sealer{app: app, c: app.Name(), key: key}
	s.mu.Lock()
	defer s.mu.Unlock()
	op := &Opener{c: s.c, writer: key.Public().(ed25519.PublicKey), keys: []ed25519.PrivateKey{key}, rd: rd, epochs: map[uint64]epochKey{}}
	for to := app.Seqno(); to > 0; {
		from := max(1, to-min(to, 63))
		entries, err := rd.Read(ctx, from, to)
		if err != nil {
			return nil, fmt.Errorf("seal resume %s: %w", s.c, err)
		}
		for i := len(entries) - 1; i >= 0; i-- {
			e := entries[i]
			if e.Hole {
				continue
			}
			env, err := decodeEnvelope(e.Data)
			if err != nil {
				return nil, fmt.Errorf("seal resume %s entry %d: %w", s.c, e.Seqno, err)
			}
			keySeq := env.KeySeq
			if env.Kind == KindKeys {
				keySeq = e.Seqno
			}
			ek, err := op.epochKey(ctx, env.Epoch, keySeq)
			if err != nil {
				return nil, fmt.Errorf("seal resume %s: %w", s.c, err)
			}
			if s.aead, err = chacha20poly1305.NewX(ek.ck); err != nil {
				return nil, fmt.Errorf("seal resume %s: %w", s.c, err)
			}
			if err := s.newNoncePrefix(); err != nil {
				return nil, err
			}
			s.epoch, s.keySeq, s.ck, s.readers = env.Epoch, keySeq, ek.ck, ek.readers
			return s, nil
		}
		to = from - 1
	}
	if err := s.rotateLocked(ctx, readers); err != nil {
		return nil, err
	}
	return s, nil
}

// Name is the capsule written.
func (s *Sealer) Name() pdu.Name { return s.c }

// Seqno is the newest seqno written.
func (s *Sealer) Seqno() uint64 { return s.app.Seqno() }

// Epoch is the current epoch and the seqno of its key record.
func (s *Sealer) Epoch() (epoch, keySeq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch, s.keySeq
}

// Readers are the current epoch's readers (the writer included).
func (s *Sealer) Readers() []ed25519.PublicKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.readers)
}

// AppendRecord seals plaintext under the current epoch and appends it; the
// record returned carries the sealed data. (A kv.Writer writes through
// it: kv.WriterOptions.Appender.)
func (s *Sealer) AppendRecord(ctx context.Context, plaintext []byte) (capsule.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count++
	binary.BigEndian.PutUint64(s.nonce[16:], s.count)
	return s.app.AppendRecord(ctx, sealData(s.c, s.aead, s.epoch, s.keySeq, s.nonce[:], plaintext))
}

// Append seals plaintext and appends it, returning its seqno.
func (s *Sealer) Append(ctx context.Context, plaintext []byte) (uint64, error) {
	r, err := s.AppendRecord(ctx, plaintext)
	return r.Seqno, err
}

// AddReader authorises reader from the next record on (a new epoch).
func (s *Sealer) AddReader(ctx context.Context, reader ed25519.PublicKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rotateLocked(ctx, append(slices.Clone(s.readers), reader))
}

// RemoveReader stops reader from reading anything written from now on: a
// new epoch whose content key is wrapped for the remaining readers only.
// What it could read before stays readable to it (it may have kept it).
func (s *Sealer) RemoveReader(ctx context.Context, reader ed25519.PublicKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if bytes.Equal(reader, s.key.Public().(ed25519.PublicKey)) {
		return fmt.Errorf("%w: the writer cannot remove itself", ErrReaders)
	}
	rest := slices.DeleteFunc(slices.Clone(s.readers), func(r ed25519.PublicKey) bool { return bytes.Equal(r, reader) })
	return s.rotateLocked(ctx, rest)
}

// Rotate starts a new epoch for the same readers (a fresh content key).
func (s *Sealer) Rotate(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rotateLocked(ctx, slices.Clone(s.readers))
}

// rotateLocked writes the key record of a new epoch for readers (and the
// writer) and switches to it once it is appended.
func (s *Sealer) rotateLocked(ctx context.Context, readers []ed25519.PublicKey) error {
	set := []ed25519.PublicKey{s.key.Public().(ed25519.PublicKey)}
	for _, r := range readers {
		if _, err := X25519Public(r); err != nil {
			return fmt.Errorf("seal %s: %w: reader %x: %w", s.c, ErrReaders, []byte(r), err)
		}
		set = append(set, slices.Clone(r))
	}
	slices.SortFunc(set, func(a, b ed25519.PublicKey) int { return bytes.Compare(a, b) })
	set = slices.CompactFunc(set, func(a, b ed25519.PublicKey) bool { return bytes.Equal(a, b) })
	if len(set) > MaxReaders {
		return fmt.Errorf("seal %s: %w: %d readers (max %d)", s.c, ErrReaders, len(set), MaxReaders)
	}
	ck := make([]byte, 32)
	if _, err := rand.Read(ck); err != nil {
		return fmt.Errorf("seal: content key: %w", err)
	}
	epoch := s.epoch + 1
	b, err := newKeyRecord(s.c, s.key, epoch, ck, set)
	if err != nil {
		return fmt.Errorf("seal %s epoch %d: %w", s.c, epoch, err)
	}
	aead, err := chacha20poly1305.NewX(ck)
	if err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	r, err := s.app.AppendRecord(ctx, b)
	if err != nil {
		return fmt.Errorf("seal %s epoch %d: key record: %w", s.c, epoch, err)
	}
	clear(s.ck)
	s.epoch, s.keySeq, s.ck, s.aead, s.readers = epoch, r.Seqno, ck, aead, set
	return s.newNoncePrefix()
}

// newNoncePrefix draws the random half of the nonces: XChaCha20's 24-byte
// nonce is 16 random bytes (fresh for each epoch and each resume) and a
// 64-bit counter, so no two payloads under one content key share a nonce.
func (s *Sealer) newNoncePrefix() error {
	if _, err := rand.Read(s.nonce[:16]); err != nil {
		return fmt.Errorf("seal: nonce: %w", err)
	}
	s.count = 0
	return nil
}
