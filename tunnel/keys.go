package tunnel

import (
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

// rawKeys derives the two direction keys of an epoch: the first 32 exported
// bytes key dialer→listener frames, the next 32 listener→dialer.
func rawKeys(cs *tls.ConnectionState, dialerIdx, listenerIdx, epoch uint32) (d2l, l2d cipher.AEAD, err error) {
	km, err := cs.ExportKeyingMaterial(exporterLabel, exporterContext(dialerIdx, listenerIdx, epoch), 2*chacha20poly1305.KeySize)
	if err != nil {
		return nil, nil, fmt.Errorf("tunnel: tls exporter: %w", err)
	}
	defer clear(km)
	if d2l, err = chacha20poly1305.New(km[:32]); err != nil {
		return nil, nil, err
	}
	if l2d, err = chacha20poly1305.New(km[32:]); err != nil {
		return nil, nil, err
	}
	return d2l, l2d, nil
}
