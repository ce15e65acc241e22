package seal

import (
	"bytes"
	"errors"
	"github.com/gdpnet/gdpnet/internal/fuzzseed"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/gdpnet/gdpnet/pdu"
)

// FuzzDecodeEnvelope: no input panics the envelope decoder, and what it
// accepts re-encodes to the same bytes.
func FuzzDecodeEnvelope(f *testing.F) {
	aead, _ := chacha20poly1305.NewX(make([]byte, 32))
	fuzzseed.Add(f, sealData(pdu.Name{1}, aead, 1, 1, make([]byte, 24), []byte("payload")))
	pub := bytes.Repeat([]byte{9}, 32)
	kr, err := codec.Marshal(&envelope{Kind: KindKeys, Epoch: 2, Wraps: []wrap{{Reader: pub, Eph: pub, Wrapped: make([]byte, 48)}},
		Sig: make([]byte, 64)})
	if err != nil {
		f.Fatal(err)
	}
	fuzzseed.Add(f, kr)
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEnvelope(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error without a sentinel: %v", err)
			}
			return
		}
		again, err := codec.Marshal(e)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted %x re-encodes to %x (%v)", b, again, err)
		}
	})
}
