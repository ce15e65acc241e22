package tunnel

import (
	"bytes"
	"encoding/hex"
	"errors"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/internal/fuzzseed"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

func seedFrames(f *testing.F) {
	var vs []frameVector
	loadJSON(f, "testdata/frames.json", &vs)
	for _, v := range vs {
		b, _ := hex.DecodeString(v.Frame)
		fuzzseed.Add(f, b)
	}
}

// FuzzFrameDecode: the raw frame decoder never panics, and whatever it
// accepts re-seals to the same bytes.
func FuzzFrameDecode(f *testing.F) {
	seedFrames(f)
	fuzzseed.Add(f, []byte{})
	fuzzseed.Add(f, make([]byte, frameOverhead))
	aead, _ := chacha20poly1305.New(vectorKey())
	f.Fuzz(func(t *testing.T, b []byte) {
		h, why, ok := parseFrameHeader(b)
		if !ok {
			if why != DropTruncated && why != DropBadType {
				t.Fatalf("reason %v", why)
			}
			return
		}
		var w replayWindow
		if !w.check(h.Counter) {
			t.Fatal("fresh window refused a counter")
		}
		var nonce [12]byte
		p, ok := openFrame(append([]byte(nil), b...), aead, &nonce, h.Counter)
		if !ok {
			return
		}
		out := make([]byte, len(p)+frameOverhead)
		n := sealFrame(out, h, aead, &nonce, p)
		if !bytes.Equal(out[:n], b) {
			t.Fatalf("re-sealed %x, got %x", out[:n], b)
		}
	})
}

// FuzzReassembler: arbitrary fragment streams never panic or exceed the
// slot limit, and a PDU fragmented and fed in a fuzzed order comes back
// intact.
func FuzzReassembler(f *testing.F) {
	seedFrames(f) // frame bytes make as good a fragment script as any
	fuzzseed.Add(f, []byte("\x01\x80\x40\x01\x01\x10"))
	f.Fuzz(func(t *testing.T, script []byte) {
		const chunk, slots = 32, 4
		var c counters
		r := newReassembler(chunk, slots, time.Second, &c)
		now := time.Now()
		// script: [id, frag, len] triples of junk fragments
		for i := 0; i+3 <= len(script); i += 3 {
			data := make([]byte, int(script[i+2])%(chunk+8))
			if p, slot := r.add(uint16(script[i]%8), script[i+1], data, now); p != nil {
				if len(p) == 0 || len(p) > MaxPDU {
					t.Fatalf("completed PDU of %d bytes", len(p))
				}
				slot.release()
			}
			if r.pending() > slots {
				t.Fatalf("%d pending", r.pending())
			}
		}
		// round trip: the script as a PDU, fragments in an order derived
		// from it
		if len(script) == 0 {
			return
		}
		frags, flags := fragment(script, chunk)
		order := make([]int, len(frags))
		for i := range order {
			order[i] = i
		}
		for i := range order {
			j := int(script[i%len(script)]) % len(order)
			order[i], order[j] = order[j], order[i]
		}
		r.reset()
		var got []byte
		for _, i := range order {
			if p, slot := r.add(500, flags[i], frags[i], now); p != nil {
				got = append([]byte(nil), p...)
				slot.release()
			}
		}
		if !bytes.Equal(got, script) {
			t.Fatalf("reassembled %x, want %x", got, script)
		}
	})
}

// FuzzControlMessage: the 16-byte control messages of PROTOCOL.md §4.3 (the
// vectors of testdata/control.json): any bytes decode to a message or an
// ErrProtocol, never a panic, and what decodes re-encodes to the same
// bytes.
func FuzzControlMessage(f *testing.F) {
	var vs []struct {
		Hex string `json:"hex"`
	}
	loadJSON(f, "testdata/control.json", &vs)
	for _, v := range vs {
		b, _ := hex.DecodeString(v.Hex)
		fuzzseed.Add(f, b)
	}
	fuzzseed.Add(f, make([]byte, ctrlLen))
	f.Fuzz(func(t *testing.T, in []byte) {
		var b [ctrlLen]byte
		copy(b[:], in)
		m, err := decodeCtrl(b)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v is not ErrProtocol", err)
			}
			return
		}
		if m.encode() != b {
			t.Fatalf("decoded %+v re-encodes to %x, not %x", m, m.encode(), b)
		}
		// readCtrl over a stream of the same bytes agrees, and a short
		// stream is an error
		if _, err := readCtrl(bytes.NewReader(in)); (err != nil) != (len(in) < ctrlLen) {
			t.Fatalf("readCtrl of %d bytes: %v", len(in), err)
		}
	})
}

// FuzzCredentials: the credentials a peer presents in its certificate's
// extension (metadata, membership, domain metadata; seeds from
// certs/testdata) decode strictly or fail with an error, and what decodes
// re-encodes to the same bytes.
func FuzzCredentials(f *testing.F) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "certs", "testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	meta, err := certs.ParseMetadata(read("client.meta"))
	if err != nil {
		f.Fatal(err)
	}
	member, err := certs.ParseCert(read("member.cose"))
	if err != nil {
		f.Fatal(err)
	}
	domain, err := certs.ParseMetadata(read("domain.meta"))
	if err != nil {
		f.Fatal(err)
	}
	fuzzseed.Add(f, EncodeCredentials(meta, member, domain))
	fuzzseed.Add(f, EncodeCredentials(meta, member, nil))
	fuzzseed.Add(f, []byte{credentialsVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		meta, member, domain, err := DecodeCredentials(b)
		if err != nil {
			return
		}
		if again := EncodeCredentials(meta, member, domain); !bytes.Equal(again, b) {
			t.Fatalf("re-encodes to %x, not %x", again, b)
		}
	})
}
