package advert

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/pdu"
)

// The tests in this file each kill mutants that survived the rest of the
// package's tests (docs/SECURITY.md, "Mutation sweep").

// TestParseAdvertiseBounds: each piece at maxPiece and one byte beyond,
// missing pieces, no names, a target without its adcert (mutants: each
// guard skipped, each || operand dropped, > ↔ >= at every bound).
func TestParseAdvertiseBounds(t *testing.T) {
	piece := func(n int) []byte { return make([]byte, n) }
	base := func() *Advertise {
		return &Advertise{Seq: 1, Endpoint: piece(10), RtCert: piece(10),
			Names: []AdvertName{{Name: pdu.Name{1}, Target: piece(10), AdCert: piece(10)}}}
	}
	tests := []struct {
		name string
		mut  func(a *Advertise)
		ok   bool
	}{
		{"valid", func(a *Advertise) {}, true},
		{"self-advertisement (no target, no adcert)", func(a *Advertise) { a.Names[0].Target, a.Names[0].AdCert = nil, nil }, true},
		{"endpoint at maxPiece", func(a *Advertise) { a.Endpoint = piece(maxPiece) }, true},
		{"endpoint over maxPiece", func(a *Advertise) { a.Endpoint = piece(maxPiece + 1) }, false},
		{"no endpoint", func(a *Advertise) { a.Endpoint = nil }, false},
		{"rtcert at maxPiece", func(a *Advertise) { a.RtCert = piece(maxPiece) }, true},
		{"rtcert over maxPiece", func(a *Advertise) { a.RtCert = piece(maxPiece + 1) }, false},
		{"no rtcert", func(a *Advertise) { a.RtCert = nil }, false},
		{"no names", func(a *Advertise) { a.Names = nil }, false},
		{"target without adcert", func(a *Advertise) { a.Names[0].AdCert = nil }, false},
		{"adcert without target", func(a *Advertise) { a.Names[0].Target = nil }, false},
		{"target at maxPiece", func(a *Advertise) { a.Names[0].Target = piece(maxPiece) }, true},
		{"target over maxPiece", func(a *Advertise) { a.Names[0].Target = piece(maxPiece + 1) }, false},
		{"adcert at maxPiece", func(a *Advertise) { a.Names[0].AdCert = piece(maxPiece) }, true},
		{"adcert over maxPiece", func(a *Advertise) { a.Names[0].AdCert = piece(maxPiece + 1) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := base()
			tt.mut(a)
			b, err := MarshalAdvertise(a)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseAdvertise(b)
			if tt.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrMalformedControl) {
				t.Fatalf("got %v, want ErrMalformedControl", err)
			}
		})
	}
}

// TestControlPayloadSize: a payload of exactly maxControl bytes is parsed,
// one byte more is refused before decoding (mutants: the size check
// skipped, > → >=).
func TestControlPayloadSize(t *testing.T) {
	sized := func(size int) []byte {
		// Names whose targets and adcerts fill the payload; the last
		// adcert's length is tuned to the byte.
		a := &Advertise{Seq: 1, Endpoint: make([]byte, 10), RtCert: make([]byte, 10)}
		for i := 0; i < 8; i++ {
			a.Names = append(a.Names, AdvertName{Name: pdu.Name{byte(i)}, Target: make([]byte, maxPiece), AdCert: make([]byte, maxPiece)})
		}
		last := &a.Names[len(a.Names)-1]
		for n := maxPiece; n > 0; n-- {
			last.AdCert = make([]byte, n)
			b, err := MarshalAdvertise(a)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) == size {
				return b
			}
		}
		t.Fatalf("no payload of %d bytes", size)
		return nil
	}
	a, err := ParseAdvertise(sized(maxControl))
	if err != nil {
		t.Fatalf("maxControl bytes: %v", err)
	}
	// One byte more: a valid message, refused for its size alone.
	a.Endpoint = append(a.Endpoint, 0)
	b, err := MarshalAdvertise(a)
	if err != nil || len(b) != maxControl+1 {
		t.Fatalf("%d bytes, %v", len(b), err)
	}
	if _, err := ParseAdvertise(b); !errors.Is(err, ErrMalformedControl) {
		t.Fatalf("maxControl+1 bytes: %v", err)
	}
}

// TestParseWithdrawAndResultBounds: a WITHDRAW names at least one name; a
// result's status and detail are bounded (mutants: each guard skipped, an
// || operand dropped, > ↔ >= at maxStatus and MaxDetail).
func TestParseWithdrawAndResultBounds(t *testing.T) {
	b, _ := MarshalWithdraw(&Withdraw{Seq: 1})
	if _, err := ParseWithdraw(b); !errors.Is(err, ErrMalformedControl) {
		t.Fatalf("withdraw of no names: %v", err)
	}
	res := func(n NameResult) error {
		b, err := MarshalResult(&Result{Seq: 1, Names: []NameResult{n}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = ParseResult(b)
		return err
	}
	if err := res(NameResult{Status: maxStatus, Detail: strings.Repeat("d", MaxDetail)}); err != nil {
		t.Fatalf("status maxStatus, detail MaxDetail: %v", err)
	}
	if err := res(NameResult{Status: maxStatus + 1}); !errors.Is(err, ErrMalformedControl) {
		t.Fatalf("status maxStatus+1: %v", err)
	}
	if err := res(NameResult{Status: StatusMalformed, Detail: strings.Repeat("d", MaxDetail+1)}); !errors.Is(err, ErrMalformedControl) {
		t.Fatalf("detail of MaxDetail+1: %v", err)
	}
}

// TestStatusAndPublishNames: every status and publish value up to the
// last has its label (the "result" label of gdp_router_advertisements_total),
// the next one a numbered fallback; ExpiryTime of 0 is the zero time
// (mutants: each guard skipped or <= → <).
func TestStatusAndPublishNames(t *testing.T) {
	if got := maxStatus.String(); got != "identity_quota" {
		t.Errorf("status %d: %q", maxStatus, got)
	}
	if got := (maxStatus + 1).String(); got != fmt.Sprintf("status(%d)", maxStatus+1) {
		t.Errorf("status %d: %q", maxStatus+1, got)
	}
	if got := maxPublish.String(); got != "no_resolver" {
		t.Errorf("publish %d: %q", maxPublish, got)
	}
	if got := (maxPublish + 1).String(); got != fmt.Sprintf("publish(%d)", maxPublish+1) {
		t.Errorf("publish %d: %q", maxPublish+1, got)
	}
	if !(NameResult{}).ExpiryTime().IsZero() {
		t.Error("expiry 0 is not the zero time")
	}
	if got := (NameResult{Expiry: 1e9}).ExpiryTime(); !got.Equal(time.Unix(1e9, 0)) {
		t.Errorf("expiry 1e9: %v", got)
	}
}
