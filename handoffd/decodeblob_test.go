package handoffd

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

// TestDecodeBlobRefuses (Session 14): what a blob frame claims is checked
// before it is believed — a frame longer than MaxFrame is refused from its
// header (nothing allocated); a blob shorter than its header, a raw length
// more than its records can hold (a small header asking for gigabytes), a
// data section too short or with stray bytes, a payload of another length
// than its header says, in every codec: compressed garbage, a stream that
// decompresses to one byte fewer or more than the raw length (mutants:
// each of readFrame's, decodeBlob's and decompress's checks skipped).
func TestDecodeBlobRefuses(t *testing.T) {
	var long bytes.Buffer
	long.Write([]byte{frameBlob, 0xff, 0xff, 0xff, 0xf0})
	long.WriteString("not 4 GiB")
	if _, _, err := readFrame(bufio.NewReader(&long), nil); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("a frame header of 4 GiB: %v, want refused from the header", err)
	}
	data := textBlock(rngFor(7))
	recs := []record{{Kind: recZero, Hash: zeroHash}, {Kind: recData, Block: 3, Hash: hashBlock(data), Data: data}}
	raw := rawBlob(recs)
	header := func(c Codec, nrec, rawLen int, payload []byte) []byte {
		p := make([]byte, blobHeaderLen, blobHeaderLen+len(payload))
		p[0] = byte(c)
		binary.BigEndian.PutUint32(p[2:], uint32(nrec))
		binary.BigEndian.PutUint32(p[6:], uint32(rawLen))
		return append(p, payload...)
	}
	tests := []struct {
		name string
		p    []byte
		want string
	}{
		{"shorter than the header", []byte{0, 0, 0, 0, 1}, "shorter than its header"},
		{"raw length beyond its records", header(CodecLZ4, 1, 64<<20, raw), "blob header"},
		{"data section short", header(CodecNone, 2, len(raw)-1, raw[:len(raw)-1]), "data section too short"},
		{"stray data bytes", header(CodecNone, 1, recHeaderLen+5, append(append([]byte(nil), raw[:recHeaderLen]...), 1, 2, 3, 4, 5)), "stray data bytes"},
		{"none: payload shorter than its raw length", header(CodecNone, 2, len(raw), raw[:len(raw)-10]), "none:"},
	}
	for _, m := range []string{"lz4", "zstd-1", "gzip-1", "xz"} {
		mode, err := ParseMode(m)
		if err != nil {
			t.Fatal(err)
		}
		good, used, err := encodeBlob(mode, len(recs), raw)
		if err != nil || used.Codec != mode.Codec {
			t.Fatalf("%s: encoded in %v, %v", m, used, err)
		}
		if _, err := decodeBlob(good); err != nil {
			t.Fatalf("%s: the genuine blob refused: %v", m, err)
		}
		comp := good[blobHeaderLen:]
		c := mode.Codec
		tests = append(tests,
			struct {
				name string
				p    []byte
				want string
			}{m + ": garbage", header(c, 2, len(raw), bytes.Repeat([]byte{0x5a}, 200)), c.String()},
			struct {
				name string
				p    []byte
				want string
			}{m + ": one byte more than the raw length", header(c, 2, len(raw)-1, comp), c.String()},
			struct {
				name string
				p    []byte
				want string
			}{m + ": one byte fewer than the raw length", header(c, 2, len(raw)+1, comp), c.String()},
		)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := decodeBlob(tt.p)
			if err == nil || recs != nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("%d records, %v; want refused (%q)", len(recs), err, tt.want)
			}
		})
	}
}
