package tunnel

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"

	"github.com/quic-go/quic-go"
)

// resetKeyInfo is the HKDF info of the stateless reset key.
const resetKeyInfo = "gdp-tunnel/1 stateless reset key"

// statelessResetKey derives the QUIC stateless reset key from the node's
// private key, so that a node restarted on the same address answers packets
// of its previous process's links with a stateless reset its peers can
// verify (RFC 9000 §10.3): they close the dead link at once instead of
// waiting for the idle timeout. The key stays secret (HKDF-SHA256 of the
// private seed under a label of its own, never sent) and is the same across
// restarts.
func statelessResetKey(priv ed25519.PrivateKey) *quic.StatelessResetKey {
	k, err := hkdf.Key(sha256.New, priv.Seed(), nil, resetKeyInfo, 32)
	if err != nil {
		return nil
	}
	var out quic.StatelessResetKey
	copy(out[:], k)
	return &out
}
