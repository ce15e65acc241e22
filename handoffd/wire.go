package handoffd

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Frame types. A frame is type (1 byte), length (4 bytes, big-endian) and
// that many bytes of payload. Sender to receiver: hello, blob, round, state,
// end. Receiver to sender: ready, ack, result.
const (
	frameHello  byte = 1  // JSON hello
	frameBlob   byte = 2  // binary blob, see encodeBlob
	frameRound  byte = 3  // JSON roundEnd: all blobs of a pre-copy round are sent
	frameState  byte = 4  // a chunk of the VM device state, raw
	frameEnd    byte = 5  // JSON end: digests; the receiver commits or refuses
	frameGo     byte = 6  // empty: the sender heard the commit; the destination may resume the VM
	frameReady  byte = 16 // JSON result: the receiver accepts the hello (or says why not)
	frameAck    byte = 17 // 16 bytes: bytes received so far, blobs applied so far
	frameResult byte = 18 // JSON result: committed, or the reason it was not
	// frameKeepAlive: empty, every hello.KeepAliveMS from the hello on,
	// when the hello asks for them (Session 14): a sender that hears
	// nothing for a few intervals takes the agent for gone.
	frameKeepAlive byte = 19
)

// Keepalive intervals a receiver accepts (hello.KeepAliveMS is clamped).
const (
	minKeepAlive = 100 * time.Millisecond
	maxKeepAlive = 10 * time.Second
)

// MaxFrame bounds one frame's payload; a larger length is a protocol error.
const MaxFrame = 16 << 20

// Limits on what a hello may ask of the receiver.
const (
	maxImages    = 8
	maxImageSize = 1 << 40
	maxStateSize = 256 << 20
)

type helloImage struct {
	Name string `json:"name"`
	Base string `json:"base"` // base cache id
	Size int64  `json:"size"`
}

type hello struct {
	Version int          `json:"version"`
	ID      string       `json:"id"` // handoff id chosen by the sender, names the result
	VM      bool         `json:"vm"` // a QEMU device state follows; the receiver may resume
	Images  []helloImage `json:"images"`
	Bases   []string     `json:"bases"` // every base whose blocks may be referenced
	Meta    VMMeta       `json:"meta,omitempty"`
	// KeepAliveMS, when set, asks the receiver for a keepalive frame
	// every that many milliseconds (clamped to 100..10,000) until the
	// stream ends. Absent (senders before Session 14): none.
	KeepAliveMS int64 `json:"keepalive_ms,omitempty"`
}

type roundEnd struct {
	Round   int   `json:"round"`
	Blobs   int   `json:"blobs"`
	Records int64 `json:"records"`
}

type endMsg struct {
	Digests   []string `json:"digests"` // per image, hex digestOf
	StateSize int64    `json:"state_size"`
	StateHash string   `json:"state_hash"` // hex SHA-256 of the device state
	Blobs     int      `json:"blobs"`
}

type result struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Filled in the final result.
	Dir string `json:"dir,omitempty"`
}

func writeFrame(w io.Writer, typ byte, payload []byte) error {
	if len(payload) > MaxFrame {
		return fmt.Errorf("frame of %d bytes exceeds %d", len(payload), MaxFrame)
	}
	var h [5]byte
	h[0] = typ
	binary.BigEndian.PutUint32(h[1:], uint32(len(payload)))
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

func writeJSON(w io.Writer, typ byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeFrame(w, typ, b)
}

// readFrame reads one frame into buf (grown as needed) and returns its type
// and payload.
func readFrame(r *bufio.Reader, buf []byte) (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > MaxFrame {
		return 0, nil, fmt.Errorf("frame type %d of %d bytes exceeds %d", h[0], n, MaxFrame)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, fmt.Errorf("frame type %d: %w", h[0], err)
	}
	return h[0], buf, nil
}

// Record kinds inside a blob.
const (
	recZero byte = 1 // the block is all zeros
	recBase byte = 2 // the block equals the base block with this hash (any base of the handoff)
	recDup  byte = 3 // the block equals a block sent earlier in this handoff
	recData byte = 4 // the block's bytes follow in the data section
	recXOR  byte = 5 // the block XOR the base block at the same offset follows
)

const recHeaderLen = 1 + 1 + 8 + 32

type record struct {
	Kind  byte
	Image uint8
	Block uint64
	Hash  Hash
	Data  []byte // recData/recXOR: BlockSize bytes
}

// Blob wire layout: codec (1), level (1), records (4), raw length (4), then
// the compressed raw payload: every record's header (kind, image, block
// index little-endian, hash), then the data of the data/xor records in order
// — data kept together compresses better than data interleaved with hashes.
const blobHeaderLen = 10

// rawBlob returns a blob's raw payload: every record's header, then the
// data of each data and xor record.
func rawBlob(recs []record) []byte { return framedRawBlob(recs)[blobHeaderLen:] }

// framedRawBlob returns blobHeaderLen bytes of room for the blob header,
// then the raw payload: mode none sends it as it is (encodeFramed), with
// no copy.
func framedRawBlob(recs []record) []byte { return appendFramedRawBlob(nil, recs) }

// appendFramedRawBlob is framedRawBlob into buf's array when it is large
// enough (a recycled buffer), else into a new one.
func appendFramedRawBlob(buf []byte, recs []record) []byte {
	nd := 0
	for i := range recs {
		if recs[i].Kind == recData || recs[i].Kind == recXOR {
			nd++
		}
	}
	n := blobHeaderLen + len(recs)*recHeaderLen + nd*BlockSize
	raw := buf[:0]
	if cap(raw) < n {
		raw = make([]byte, 0, n)
	}
	raw = raw[:blobHeaderLen]
	for i := range recs {
		r := &recs[i]
		raw = append(raw, r.Kind, r.Image)
		raw = binary.LittleEndian.AppendUint64(raw, r.Block)
		raw = append(raw, r.Hash[:]...)
	}
	for i := range recs {
		if recs[i].Kind == recData || recs[i].Kind == recXOR {
			raw = append(raw, recs[i].Data...)
		}
	}
	return raw
}

// encodeBlob returns the blob frame's payload for raw in mode m (or in
// none when m would not shrink it) and the mode used.
func encodeBlob(m Mode, nrec int, raw []byte) ([]byte, Mode, error) {
	framed := make([]byte, blobHeaderLen+len(raw))
	copy(framed[blobHeaderLen:], raw)
	return encodeFramed(m, nrec, framed)
}

// encodeFramed is encodeBlob of framed[blobHeaderLen:]; in mode none the
// payload is framed itself, its first bytes overwritten by the header.
func encodeFramed(m Mode, nrec int, framed []byte) ([]byte, Mode, error) {
	raw := framed[blobHeaderLen:]
	out := framed
	if m.Codec != CodecNone {
		hdr := make([]byte, blobHeaderLen, blobHeaderLen+len(raw)/2)
		var err error
		out, err = compress(m, hdr, raw)
		if err == errIncompressible || (err == nil && len(out)-blobHeaderLen >= len(raw)) {
			// Never send more than the raw bytes: fall back to none for this blob.
			m, out, err = Mode{Codec: CodecNone, Delta: m.Delta}, framed, nil
		}
		if err != nil {
			return nil, m, err
		}
	}
	out[0] = byte(m.Codec)
	out[1] = byte(m.Level)
	binary.BigEndian.PutUint32(out[2:], uint32(nrec))
	binary.BigEndian.PutUint32(out[6:], uint32(len(raw)))
	return out, m, nil
}

// decodeBlob parses a blob frame; data slices alias the decompressed buffer.
func decodeBlob(p []byte) ([]record, error) {
	if len(p) < blobHeaderLen {
		return nil, fmt.Errorf("blob of %d bytes is shorter than its header", len(p))
	}
	c := Codec(p[0])
	nrec := int(binary.BigEndian.Uint32(p[2:]))
	rawLen := int(binary.BigEndian.Uint32(p[6:]))
	if nrec == 0 || nrec > MaxFrame/recHeaderLen || rawLen < nrec*recHeaderLen || rawLen > nrec*(recHeaderLen+BlockSize) {
		return nil, fmt.Errorf("blob header: %d records, %d raw bytes", nrec, rawLen)
	}
	raw, err := decompress(c, p[blobHeaderLen:], rawLen)
	if err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	recs := make([]record, nrec)
	data := raw[nrec*recHeaderLen:]
	for i := range recs {
		h := raw[i*recHeaderLen:]
		r := &recs[i]
		r.Kind, r.Image = h[0], h[1]
		r.Block = binary.LittleEndian.Uint64(h[2:])
		copy(r.Hash[:], h[10:42])
		switch r.Kind {
		case recZero, recBase, recDup:
		case recData, recXOR:
			if len(data) < BlockSize {
				return nil, fmt.Errorf("blob: record %d: data section too short", i)
			}
			r.Data, data = data[:BlockSize], data[BlockSize:]
		default:
			return nil, fmt.Errorf("blob: record %d: unknown kind %d", i, r.Kind)
		}
	}
	if len(data) != 0 {
		return nil, fmt.Errorf("blob: %d stray data bytes", len(data))
	}
	return recs, nil
}
