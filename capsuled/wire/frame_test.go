package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// bulkRequestFrame is the frame of a bulk READ of entries 5 to 20 of
// capsule 00 01 … 1f, the reader holding a heartbeat of size 4
// (docs/PROTOCOL.md §8.8 quotes it).
const bulkRequestFrame = "0000002ea601030204045820000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f080509140c04"

// TestBulkFrame: a frame is the 4-byte big-endian length and the message;
// the documented vector round-trips; ReadFrame refuses a zero or
// oversized length, a short frame and a message that does not decode.
func TestBulkFrame(t *testing.T) {
	c := make([]byte, 32)
	for i := range c {
		c[i] = byte(i)
	}
	m := &Message{Op: OpRead, ID: 4, Capsule: c, From: 5, To: 20, Size: 4}
	var buf bytes.Buffer
	if err := WriteFrame(&buf, m); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(buf.Bytes()); got != bulkRequestFrame {
		t.Fatalf("frame\n got %s\nwant %s", got, bulkRequestFrame)
	}
	back, err := ReadFrame(bytes.NewReader(buf.Bytes()))
	if err != nil || back.From != 5 || back.To != 20 || back.Size != 4 || back.Op != OpRead {
		t.Fatalf("read back %+v, %v", back, err)
	}
	if doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "PROTOCOL.md")); err == nil &&
		!strings.Contains(strings.ReplaceAll(string(doc), "\n", ""), bulkRequestFrame) {
		t.Error("docs/PROTOCOL.md §8.8 does not quote the bulk request frame")
	}
	long := make([]byte, 4)
	binary.BigEndian.PutUint32(long, MaxMessage+1)
	for name, in := range map[string][]byte{
		"zero length": {0, 0, 0, 0},
		"too long":    long,
		"short":       buf.Bytes()[:20],
		"garbage":     {0, 0, 0, 3, 0xff, 0xff, 0xff},
		"no header":   {0, 0},
	} {
		if _, err := ReadFrame(bytes.NewReader(in)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if name == "too long" && !errors.Is(err, ErrTooLarge) {
			t.Errorf("too long: %v", err)
		}
	}
	if _, err := ReadFrame(bytes.NewReader(nil)); !errors.Is(err, io.EOF) {
		t.Errorf("end of stream: %v, want io.EOF", err)
	}
}
