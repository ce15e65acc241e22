package tunnel

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/tls"
	"encoding/binary"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// exporterLabel is the TLS exporter label for raw session keys (RFC 8446
// §7.5; the "EXPORTER-" prefix marks it as an application label).
const exporterLabel = "EXPORTER-gdpnet-raw-v1"

// exporterContext names both session indices and the epoch, so every epoch
// and every session gets independent keys from one TLS connection:
//
//	dialer index u32 | listener index u32 | epoch u32
func exporterContext(dialerIdx, listenerIdx, epoch uint32) []byte {
	var c [12]byte
	binary.BigEndian.PutUint32(c[0:], dialerIdx)
	binary.BigEndian.PutUint32(c[4:], listenerIdx)
	binary.BigEndian.PutUint32(c[8:], epoch)
	return c[:]
}

// Frame limits of an AES-GCM key (PROTOCOL.md §4.4): the dialer starts a
// new epoch once either direction has sent aesRekeyFrames frames in the
// current one, and a sender never seals more than aesMaxFrames with one
// key — the confidentiality limit of AES-GCM for packets of up to 2^11
// bytes (RFC 9001 §6.6). ChaCha20-Poly1305 has no practical limit.
// Variables so that tests can lower them.
var (
	aesRekeyFrames uint64 = 1 << 22
	aesMaxFrames   uint64 = 1 << 23
)

// rawAEAD is the AEAD algorithm raw frames use on one link (PROTOCOL.md
// §4.4): ChaCha20-Poly1305 on a gdp-tunnel/1 connection (ALPNv1); on
// gdp-tunnel/2 (ALPN) the AEAD of the TLS 1.3 cipher suite the connection
// negotiated, which crypto/tls picks as AES-GCM only when both ends have
// AES hardware.
type rawAEAD struct {
	name string
	// keyLen is how many bytes of each direction's 32 exported key bytes
	// key it (the first ones).
	keyLen int
	// limited: AES-GCM, whose keys carry at most aesMaxFrames frames.
	limited bool
	// maxFrames bounds the frames sealed with one key, rekeyFrames
	// starts a new epoch; 0: no limit.
	maxFrames, rekeyFrames uint64
	new                    func(key []byte) (cipher.AEAD, error)
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

var (
	aeadChaCha = rawAEAD{name: "chacha20-poly1305", keyLen: chacha20poly1305.KeySize, new: chacha20poly1305.New}
	aeadAES128 = rawAEAD{name: "aes-128-gcm", keyLen: 16, limited: true, new: newGCM}
	aeadAES256 = rawAEAD{name: "aes-256-gcm", keyLen: 32, limited: true, new: newGCM}
)

// rawAEADOf picks the raw frames' AEAD for a connection's TLS state.
func rawAEADOf(cs *tls.ConnectionState) rawAEAD {
	a := aeadChaCha
	if cs.NegotiatedProtocol == ALPN {
		switch cs.CipherSuite {
		case tls.TLS_AES_128_GCM_SHA256:
			a = aeadAES128
		case tls.TLS_AES_256_GCM_SHA384:
			a = aeadAES256
		}
	}
	if a.limited {
		a.maxFrames, a.rekeyFrames = aesMaxFrames, aesRekeyFrames
	}
	return a
}

// rawKeys derives the two direction keys of an epoch: the first 32 exported
// bytes key dialer→listener frames, the next 32 listener→dialer (an AES-128
// key is the first 16 bytes of its 32).
func rawKeys(cs *tls.ConnectionState, dialerIdx, listenerIdx, epoch uint32) (d2l, l2d cipher.AEAD, err error) {
	km, err := cs.ExportKeyingMaterial(exporterLabel, exporterContext(dialerIdx, listenerIdx, epoch), 2*chacha20poly1305.KeySize)
	if err != nil {
		return nil, nil, fmt.Errorf("tunnel: tls exporter: %w", err)
	}
	defer clear(km)
	a := rawAEADOf(cs)
	if d2l, err = a.new(km[:a.keyLen]); err != nil {
		return nil, nil, err
	}
	if l2d, err = a.new(km[32 : 32+a.keyLen]); err != nil {
		return nil, nil, err
	}
	return d2l, l2d, nil
}
