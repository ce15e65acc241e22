package seal

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/sha512"
	"errors"
	"fmt"
	"math/big"
	"slices"
)

// ErrBadKey: a reader key that is not a usable Ed25519 public key.
var ErrBadKey = errors.New("seal: not a usable ed25519 public key")

// p = 2^255 - 19 and d = -121665/121666 mod p (RFC 8032 §5.1).
var (
	fieldP = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	curveD = func() *big.Int {
		d := new(big.Int).ModInverse(big.NewInt(121666), fieldP)
		d.Mul(d, big.NewInt(-121665))
		return d.Mod(d, fieldP)
	}()
)

// X25519Public converts an Ed25519 public key to the X25519 public key of
// the same secret: u = (1 + y) / (1 - y) mod p (RFC 7748 §4.1). It refuses
// encodings that are not a point of the curve.
func X25519Public(pub ed25519.PublicKey) (*ecdh.PublicKey, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadKey, len(pub))
	}
	le := slices.Clone([]byte(pub))
	le[31] &= 0x7f // the sign of x
	slices.Reverse(le)
	y := new(big.Int).SetBytes(le)
	if y.Cmp(fieldP) >= 0 {
		return nil, fmt.Errorf("%w: y out of range", ErrBadKey)
	}
	// On the curve: x^2 = (y^2 - 1) / (d y^2 + 1) must be a square.
	y2 := new(big.Int).Mul(y, y)
	num := new(big.Int).Sub(y2, big.NewInt(1))
	den := new(big.Int).Mul(curveD, y2)
	den.Add(den, big.NewInt(1)).Mod(den, fieldP)
	x2 := new(big.Int).Mul(num.Mod(num, fieldP), new(big.Int).ModInverse(den, fieldP))
	x2.Mod(x2, fieldP)
	if x2.Sign() != 0 && big.Jacobi(x2, fieldP) != 1 {
		return nil, fmt.Errorf("%w: not on the curve", ErrBadKey)
	}
	oneMinus := new(big.Int).Sub(big.NewInt(1), y)
	oneMinus.Mod(oneMinus, fieldP)
	if oneMinus.Sign() == 0 {
		return nil, fmt.Errorf("%w: the identity point", ErrBadKey)
	}
	u := new(big.Int).Add(big.NewInt(1), y)
	u.Mul(u, new(big.Int).ModInverse(oneMinus, fieldP)).Mod(u, fieldP)
	out := make([]byte, 32)
	u.FillBytes(out)
	slices.Reverse(out) // little-endian
	k, err := ecdh.X25519().NewPublicKey(out)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	return k, nil
}

// X25519Private converts an Ed25519 private key to the X25519 private key
// whose public key X25519Public gives: the first half of SHA-512 of the
// seed (X25519 clamps it as Ed25519 does).
func X25519Private(key ed25519.PrivateKey) (*ecdh.PrivateKey, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("seal: ed25519 private key of %d bytes", len(key))
	}
	h := sha512.Sum512(key.Seed())
	defer clear(h[:])
	k, err := ecdh.X25519().NewPrivateKey(h[:32])
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return k, nil
}
