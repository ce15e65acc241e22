package certs

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"time"
)

// Identity is a principal that can sign: its metadata, name and private key.
// For a capsule, Key is the owner key (it signs AdCerts).
type Identity struct {
	Meta *Metadata
	Name Name
	Key  ed25519.PrivateKey
}

// NewIdentity makes a fresh Ed25519 key and metadata of the given kind.
// For KindCapsule the one fresh key is both owner and writer key; use
// NewCapsule to keep them apart (recommended).
func NewIdentity(kind Kind, description string) (*Identity, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("new identity: %w", err)
	}
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("new identity: %w", err)
	}
	return IdentityFromKey(kind, priv, description, time.Now(), nonce)
}

// IdentityFromKey builds an identity around an existing key with the given
// creation time and nonce. It is deterministic, which makes reproducible test
// vectors; ordinary callers want NewIdentity.
func IdentityFromKey(kind Kind, key ed25519.PrivateKey, description string, created time.Time, nonce [16]byte) (*Identity, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("identity: private key has %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	pub := key.Public().(ed25519.PublicKey)
	m := &Metadata{Kind: kind, Key: pub, Created: created.UTC().Truncate(time.Second), Nonce: nonce, Description: description}
	if kind == KindCapsule {
		m.WriterKey = pub
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	return &Identity{Meta: m, Name: m.Name(), Key: key}, nil
}

// NewIdentityFor pairs existing metadata with its private key, checking that
// the key is the metadata's key (for a capsule: the owner key).
func NewIdentityFor(m *Metadata, key ed25519.PrivateKey) (*Identity, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("identity: private key has %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	if !bytes.Equal(key.Public().(ed25519.PublicKey), m.Key) {
		return nil, fmt.Errorf("identity: private key does not belong to the metadata's key")
	}
	return &Identity{Meta: m, Name: m.Name(), Key: key}, nil
}

// Public returns the identity's public key.
func (id *Identity) Public() ed25519.PublicKey { return id.Key.Public().(ed25519.PublicKey) }
