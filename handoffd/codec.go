package handoffd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
)

// Codec names a blob compression algorithm. The values are on the wire.
type Codec uint8

// Codecs.
const (
	CodecNone Codec = 0
	CodecLZ4  Codec = 1
	CodecGzip Codec = 2
	CodecZstd Codec = 3
	CodecXZ   Codec = 4
)

func (c Codec) String() string {
	switch c {
	case CodecNone:
		return "none"
	case CodecLZ4:
		return "lz4"
	case CodecGzip:
		return "gzip"
	case CodecZstd:
		return "zstd"
	case CodecXZ:
		return "xz"
	}
	return fmt.Sprintf("codec(%d)", uint8(c))
}

// Mode is one point in the sender's choice space: a codec, its level and
// whether blocks are XORed against the base block at the same offset first.
type Mode struct {
	Codec Codec
	Level int  // zstd 1..4 (fastest..best), gzip 1..9, others 0
	Delta bool // XOR against the base block at the same offset
}

func (m Mode) String() string {
	s := m.Codec.String()
	if m.Codec == CodecZstd || m.Codec == CodecGzip {
		s += "-" + strconv.Itoa(m.Level)
	}
	if m.Delta {
		s += "+xor"
	}
	return s
}

// ParseMode reads the form Mode.String writes: "zstd-2", "lz4+xor", "none".
func ParseMode(s string) (Mode, error) {
	var m Mode
	if t, ok := strings.CutSuffix(s, "+xor"); ok {
		m.Delta, s = true, t
	}
	name, lvl, hasLvl := strings.Cut(s, "-")
	switch name {
	case "none":
		m.Codec = CodecNone
	case "lz4":
		m.Codec = CodecLZ4
	case "gzip":
		m.Codec = CodecGzip
	case "zstd":
		m.Codec = CodecZstd
	case "xz":
		m.Codec = CodecXZ
	default:
		return Mode{}, fmt.Errorf("mode %q: unknown codec %q", s, name)
	}
	if hasLvl {
		n, err := strconv.Atoi(lvl)
		if err != nil {
			return Mode{}, fmt.Errorf("mode %q: level: %w", s, err)
		}
		m.Level = n
	} else if m.Codec == CodecZstd {
		m.Level = 1
	} else if m.Codec == CodecGzip {
		m.Level = 1
	}
	if err := m.validate(); err != nil {
		return Mode{}, err
	}
	return m, nil
}

func (m Mode) validate() error {
	switch m.Codec {
	case CodecZstd:
		if m.Level < 1 || m.Level > 4 {
			return fmt.Errorf("mode %s: zstd level must be 1..4", m)
		}
	case CodecGzip:
		if m.Level < 1 || m.Level > 9 {
			return fmt.Errorf("mode %s: gzip level must be 1..9", m)
		}
	case CodecNone, CodecLZ4, CodecXZ:
		if m.Level != 0 {
			return fmt.Errorf("mode %s: codec takes no level", m)
		}
	default:
		return fmt.Errorf("unknown codec %d", m.Codec)
	}
	return nil
}

// DefaultModes is the adapter's default choice space, lightest first:
// every codec, plain. The +xor variants (AllModes) are not in it: on the
// dataset every one was larger than its plain twin (new content written
// over old data, not edits; the whole run: xz+xor 121.3 vs xz 112.0 MB,
// zstd-3+xor 130.6 vs 120.6 MB), and in the samples they tied with it
// (blocks over a zero base block) and cost base reads at both ends.
// SendConfig.Modes and a fixed --mode can still name them.
func DefaultModes() []Mode { return modeSet(false) }

// AllModes is every mode the wire format knows at the levels the adapter
// uses: DefaultModes, then each with +xor.
func AllModes() []Mode { return append(modeSet(false), modeSet(true)...) }

func modeSet(delta bool) []Mode {
	return []Mode{
		{Codec: CodecNone, Delta: delta},
		{Codec: CodecLZ4, Delta: delta},
		{Codec: CodecZstd, Level: 1, Delta: delta},
		{Codec: CodecZstd, Level: 2, Delta: delta},
		{Codec: CodecZstd, Level: 3, Delta: delta},
		{Codec: CodecZstd, Level: 4, Delta: delta}, // between zstd-3 and xz: 6 % smaller than zstd-3 on the dataset
		{Codec: CodecGzip, Level: 6, Delta: delta},
		{Codec: CodecXZ, Delta: delta},
	}
}

var (
	zencMu sync.Mutex
	zenc   = map[int]*zstd.Encoder{}
	zdec   *zstd.Decoder
	zdecMu sync.Once
)

func zstdEncoder(level int) (*zstd.Encoder, error) {
	zencMu.Lock()
	defer zencMu.Unlock()
	if e := zenc[level]; e != nil {
		return e, nil
	}
	// EncodeAll takes one encoder from a pool of the encoder's
	// concurrency: with 1, the compress workers queued behind each other
	// (zstd ran on one core whatever Workers said).
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevel(level)), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithEncoderCRC(false))
	if err != nil {
		return nil, fmt.Errorf("zstd encoder level %d: %w", level, err)
	}
	zenc[level] = e
	return e, nil
}

func zstdDecoder() *zstd.Decoder {
	zdecMu.Do(func() {
		zdec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(64<<20))
	})
	return zdec
}

// compress appends src compressed with m's codec to dst.
func compress(m Mode, dst, src []byte) ([]byte, error) {
	switch m.Codec {
	case CodecNone:
		return append(dst, src...), nil
	case CodecLZ4:
		start := len(dst)
		dst = append(dst, make([]byte, lz4.CompressBlockBound(len(src)))...)
		var c lz4.Compressor
		n, err := c.CompressBlock(src, dst[start:])
		if err != nil {
			return nil, fmt.Errorf("lz4: %w", err)
		}
		if n == 0 { // incompressible: lz4 wants a literal-only block
			return nil, errIncompressible
		}
		return dst[:start+n], nil
	case CodecGzip:
		b := bytes.NewBuffer(dst)
		w, err := gzip.NewWriterLevel(b, m.Level)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		if _, err := w.Write(src); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		if err := w.Close(); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return b.Bytes(), nil
	case CodecZstd:
		e, err := zstdEncoder(m.Level)
		if err != nil {
			return nil, err
		}
		return e.EncodeAll(src, dst), nil
	case CodecXZ:
		b := bytes.NewBuffer(dst)
		w, err := xz.WriterConfig{DictCap: 4 << 20}.NewWriter(b)
		if err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		if _, err := w.Write(src); err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		if err := w.Close(); err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		return b.Bytes(), nil
	}
	return nil, fmt.Errorf("unknown codec %d", m.Codec)
}

var errIncompressible = errors.New("incompressible")

// decompress returns src decompressed with codec c; the result must be
// exactly rawLen bytes, and no more than rawLen is ever produced. For none
// it is src itself.
func decompress(c Codec, src []byte, rawLen int) ([]byte, error) {
	if c == CodecNone {
		if len(src) != rawLen {
			return nil, fmt.Errorf("none: %d bytes, want %d", len(src), rawLen)
		}
		return src, nil
	}
	out := make([]byte, rawLen)
	switch c {
	case CodecLZ4:
		n, err := lz4.UncompressBlock(src, out)
		if err != nil {
			return nil, fmt.Errorf("lz4: %w", err)
		}
		if n != rawLen {
			return nil, fmt.Errorf("lz4: %d bytes, want %d", n, rawLen)
		}
		return out, nil
	case CodecZstd:
		d := zstdDecoder()
		res, err := d.DecodeAll(src, out[:0])
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		if len(res) != rawLen {
			return nil, fmt.Errorf("zstd: %d bytes, want %d", len(res), rawLen)
		}
		return res, nil
	case CodecGzip, CodecXZ:
		var r io.Reader
		var err error
		if c == CodecGzip {
			r, err = gzip.NewReader(bytes.NewReader(src))
		} else {
			r, err = xz.NewReader(bytes.NewReader(src))
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c, err)
		}
		if _, err := io.ReadFull(r, out); err != nil {
			return nil, fmt.Errorf("%s: %w", c, err)
		}
		var one [1]byte
		if n, _ := r.Read(one[:]); n != 0 {
			return nil, fmt.Errorf("%s: more than %d bytes", c, rawLen)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown codec %d", c)
}
