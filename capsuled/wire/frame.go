package wire

import (
	"encoding/binary"
	"fmt"
	"io"
)

// BulkALPN is the application protocol of bulk read streams: QUIC over
// names to a capsule server's own name (docs/PROTOCOL.md §8.8).
const BulkALPN = "gdp-bulk/1"

// WriteFrame writes m on a stream as a frame: its length (4 bytes, big
// endian) and its encoding.
func WriteFrame(w io.Writer, m *Message) error {
	b, err := m.Marshal()
	if err != nil {
		return err
	}
	f := make([]byte, 4, 4+len(b))
	binary.BigEndian.PutUint32(f, uint32(len(b)))
	_, err = w.Write(append(f, b...))
	return err
}

// ReadFrame reads one frame of WriteFrame: a length above MaxMessage, a
// short frame or a message that does not decode is an error.
func ReadFrame(r io.Reader) (*Message, error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(h[:])
	if n == 0 || n > MaxMessage {
		return nil, fmt.Errorf("frame of %d bytes: %w (max %d)", n, ErrTooLarge, MaxMessage)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("frame of %d bytes: %w", n, err)
	}
	return Unmarshal(b)
}
