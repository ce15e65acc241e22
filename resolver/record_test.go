package resolver

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"github.com/gdpnet/gdpnet/internal/fuzzseed"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

var goldenBase = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// goldenRecords are the records whose bytes docs/PROTOCOL.md §6 shows.
func goldenRecords(t testing.TB) map[string]*Record {
	w := newWorld(t, goldenBase)
	d := w.domain("golden")
	r := w.router(d, "router golden")
	name, chain := w.capsuleAt(r, "golden", 12*time.Hour)
	loc := w.location(r, name, chain, 7, "127.0.0.1:4433", "[::1]:4433")
	selfName, selfChain := w.selfAt(r, "golden self")
	self := w.location(r, selfName, selfChain, 1, "127.0.0.1:4433")
	tomb, err := loc.Tombstone(r.id.Key, 8)
	if err != nil {
		t.Fatal(err)
	}
	b := w.router(d, "border golden")
	border, err := NewBorder(b.id.Key, b.id.Meta, b.member, name, chain, []string{"127.0.0.1:5533"}, 9, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*Record{"location": loc, "self": self, "tombstone": tomb, "border": border}
}

func TestRecordGolden(t *testing.T) {
	for name, rec := range goldenRecords(t) {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", name+".hex")
			got := hex.EncodeToString(rec.Bytes())
			if *update {
				if err := os.WriteFile(path, []byte(got+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if strings.TrimSpace(string(want)) != got {
				t.Fatalf("encoding changed:\n got %s\nwant %s", got, want)
			}
			raw, _ := hex.DecodeString(strings.TrimSpace(string(want)))
			back, err := ParseRecord(raw)
			if err != nil {
				t.Fatalf("parse golden: %v", err)
			}
			if back.Name != rec.Name || back.Sequence != rec.Sequence || !back.Expiry.Equal(rec.Expiry) ||
				back.Kind != rec.Kind || back.Withdrawn != rec.Withdrawn || back.Router() != rec.Router() {
				t.Fatalf("round trip changed fields: %+v vs %+v", back, rec)
			}
		})
	}
}

func TestRecordExpiryIsChainExpiry(t *testing.T) {
	w := newWorld(t, goldenBase)
	d := w.domain("a")
	r := w.router(d, "r")
	name, chain := w.capsuleAt(r, "c", 3*time.Hour)
	rec := w.location(r, name, chain, 1)
	if want := goldenBase.Add(3 * time.Hour); !rec.Expiry.Equal(want) {
		t.Fatalf("expiry %s, want the chain's %s", rec.Expiry, want)
	}
	// An explicit expiry later than the chain's is capped when verified.
	late, err := NewLocation(r.id.Key, name, chain, []string{"127.0.0.1:1"}, 2, goldenBase.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	v := &Verifier{Certs: trust(goldenBase.Add(time.Hour), d)}
	exp, err := v.Verify(late)
	if err != nil {
		t.Fatal(err)
	}
	if want := goldenBase.Add(3 * time.Hour); !exp.Equal(want) {
		t.Fatalf("verified expiry %s, want %s", exp, want)
	}
}

func trust(now time.Time, domains ...*certs.Identity) *certs.Verifier {
	return fixedVerifier(now, domains...)
}

func TestSignRefuses(t *testing.T) {
	w := newWorld(t, goldenBase)
	d := w.domain("a")
	r := w.router(d, "r")
	other := w.router(d, "other")
	name, chain := w.capsuleAt(r, "c", time.Hour)
	long := make([]string, MaxAddrs+1)
	for i := range long {
		long[i] = "127.0.0.1:1"
	}
	tests := []struct {
		name    string
		key     []byte
		addrs   []string
		wantErr error
	}{
		{"not the router's key", other.id.Key, []string{"127.0.0.1:1"}, ErrBadSignature},
		{"no addresses", r.id.Key, nil, ErrMalformed},
		{"hostname, not ip", r.id.Key, []string{"localhost:4433"}, ErrMalformed},
		{"port zero", r.id.Key, []string{"127.0.0.1:0"}, ErrMalformed},
		{"non-canonical ipv6", r.id.Key, []string{"[0::1]:4433"}, ErrMalformed},
		{"too many addresses", r.id.Key, long, ErrTooLarge},
		{"short key", r.id.Key[:10], []string{"127.0.0.1:1"}, ErrBadSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewLocation(tc.key, name, chain, tc.addrs, 1, time.Time{})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestParseRecordRefuses(t *testing.T) {
	good := goldenRecords(t)["location"].Bytes()
	flip := func(i int) []byte { b := bytes.Clone(good); b[i] ^= 1; return b }
	tests := []struct {
		name    string
		in      []byte
		wantErr error
	}{
		{"empty", nil, ErrMalformed},
		{"truncated", good[:len(good)-1], ErrMalformed},
		{"trailing byte", append(bytes.Clone(good), 0), ErrMalformed},
		{"bad signature", flip(len(good) - 1), ErrBadSignature},
		{"sequence changed", bytes.Replace(good, []byte{0x05, 0x07}, []byte{0x05, 0x08}, 1), ErrBadSignature},
		{"too large", make([]byte, MaxRecordSize+1), ErrTooLarge},
		{"not a map", []byte{0x80}, ErrMalformed},
		{"unknown key", append([]byte{good[0] + 1}, append(good[1:], 0x0b, 0x00)...), ErrMalformed},
		{"indefinite map", append(append([]byte{0xbf}, good[1:]...), 0xff), ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRecord(tc.in)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func FuzzParseRecord(f *testing.F) {
	files := []string{"testdata/location.hex", "testdata/self.hex", "testdata/tombstone.hex", "testdata/border.hex"}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		raw, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil {
			f.Fatal(err)
		}
		fuzzseed.Add(f, raw)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRecord(b)
		if err != nil {
			return
		}
		// Whatever parses re-encodes to exactly the same bytes.
		out, err := r.Marshal()
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("round trip: %v\n in %x\nout %x", err, b, out)
		}
		again, err := ParseRecord(out)
		if err != nil || again.Name != r.Name || again.Sequence != r.Sequence {
			t.Fatalf("reparse: %v", err)
		}
	})
}
