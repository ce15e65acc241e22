package wire

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gdpnet/gdpnet/internal/fuzzseed"
	"github.com/gdpnet/gdpnet/tunnel"
)

// TestRequester: the proof round-trips, the create-requester vector's key
// 13 decodes to the vector client's credentials, and what is not one
// canonical Requester with credentials is refused.
func TestRequester(t *testing.T) {
	tv := trustVectors(t)
	r, err := UnmarshalRequester(tv.requester)
	if err != nil {
		t.Fatal(err)
	}
	meta, member, domain, err := tunnel.DecodeCredentials(r.Credentials)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Description != "vector client" || member.Subject != meta.Name() || member.Issuer != domain.Name() || r.Source != nil {
		t.Fatalf("decoded %+v %+v %+v source %x", meta, member, domain, r.Source)
	}
	with := Requester{Credentials: r.Credentials, Source: tv.meta.Marshal()}
	b, err := with.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalRequester(b)
	if err != nil || !bytes.Equal(back.Source, with.Source) || !bytes.Equal(back.Credentials, with.Credentials) {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	for _, tt := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"empty map", []byte{0xa0}},
		{"no credentials", []byte{0xa1, 0x02, 0x41, 0x00}},
		{"unknown key", []byte{0xa2, 0x01, 0x41, 0x00, 0x03, 0x41, 0x00}},
		{"not canonical: keys out of order", []byte{0xa2, 0x02, 0x41, 0x00, 0x01, 0x41, 0x00}},
		{"trailing bytes", append(append([]byte{}, tv.requester...), 0)},
		{"too large", bytes.Repeat([]byte{0}, MaxRequester+1)},
	} {
		if _, err := UnmarshalRequester(tt.b); !errors.Is(err, ErrRequester) {
			t.Errorf("%s: %v, want ErrRequester", tt.name, err)
		}
	}
	if _, err := (&Requester{}).Marshal(); !errors.Is(err, ErrRequester) {
		t.Errorf("marshal without credentials: %v", err)
	}
}

func FuzzUnmarshalRequester(f *testing.F) {
	fuzzseed.Add(f, trustVectors(f).requester)
	fuzzseed.Add(f, []byte{0xa1, 0x01, 0x41, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := UnmarshalRequester(b)
		if err != nil {
			return
		}
		again, err := r.Marshal()
		if err != nil {
			t.Fatalf("accepted proof does not re-encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("round trip changed the bytes:\n in %x\nout %x", b, again)
		}
	})
}
