package tunnel

import (
	"crypto/cipher"
	"encoding/binary"
)

// Raw GDP-in-UDP frame layout (PROTOCOL.md §2, docs/PROTOCOL.md §4.4).
const (
	frameType      = 0x21
	frameHeaderLen = 16
	frameTagLen    = 16
	frameOverhead  = frameHeaderLen + frameTagLen
	fragMore       = 0x80 // more fragments follow
	fragIndexMask  = 0x7f
	maxFragments   = 128
	// minRawMTU is the smallest frame size that still fits MaxPDU into
	// maxFragments fragments.
	minRawMTU = frameOverhead + (MaxPDU+maxFragments-1)/maxFragments
	maxRawMTU = 65507 // largest UDP payload over IPv4
)

// frameHeader is the 16 cleartext bytes of a frame; they are the AEAD's
// associated data.
type frameHeader struct {
	Frag     byte   // bit 7 more fragments, bits 0-6 fragment index
	PacketID uint16 // fragments of one PDU share it
	Index    uint32 // receiver's session index
	Counter  uint64 // AEAD nonce and replay position
}

func (h frameHeader) put(b []byte) {
	b[0] = frameType
	b[1] = h.Frag
	binary.BigEndian.PutUint16(b[2:], h.PacketID)
	binary.BigEndian.PutUint32(b[4:], h.Index)
	binary.BigEndian.PutUint64(b[8:], h.Counter)
}

// parseFrameHeader reads the cleartext header, or says why the datagram
// cannot be a frame.
func parseFrameHeader(b []byte) (frameHeader, DropReason, bool) {
	if len(b) < frameOverhead {
		return frameHeader{}, DropTruncated, false
	}
	if b[0] != frameType {
		return frameHeader{}, DropBadType, false
	}
	return frameHeader{
		Frag:     b[1],
		PacketID: binary.BigEndian.Uint16(b[2:]),
		Index:    binary.BigEndian.Uint32(b[4:]),
		Counter:  binary.BigEndian.Uint64(b[8:]),
	}, 0, true
}

// setNonce writes the 96-bit ChaCha20-Poly1305 nonce for a counter: four
// zero bytes, then the counter big-endian.
func setNonce(nonce *[12]byte, counter uint64) {
	binary.BigEndian.PutUint64(nonce[4:], counter)
}

// sealFrame writes a whole frame for payload into dst (which must have
// room for len(payload)+frameOverhead bytes) and returns its length.
func sealFrame(dst []byte, h frameHeader, aead cipher.AEAD, nonce *[12]byte, payload []byte) int {
	h.put(dst[:frameHeaderLen])
	setNonce(nonce, h.Counter)
	out := aead.Seal(dst[frameHeaderLen:frameHeaderLen], nonce[:], payload, dst[:frameHeaderLen])
	return frameHeaderLen + len(out)
}

// openFrame authenticates and decrypts b in place, returning the plaintext
// (aliasing b) or false if the tag does not verify.
func openFrame(b []byte, aead cipher.AEAD, nonce *[12]byte, counter uint64) ([]byte, bool) {
	setNonce(nonce, counter)
	p, err := aead.Open(b[frameHeaderLen:frameHeaderLen], nonce[:], b[frameHeaderLen:], b[:frameHeaderLen])
	return p, err == nil
}
