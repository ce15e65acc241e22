package resolver

import (
	"testing"

	"github.com/gdpnet/gdpnet/internal/fuzzseed"
)

// FuzzValidator: what a DHT node does with a PUT_VALUE or GET_VALUE answer
// from a peer (kad-dht's Validate and Select): any key and value are
// refused with an error or accepted only when every entry verifies under
// the trusted domains for the key's name; Select never panics and answers
// an index of the values given.
func FuzzValidator(f *testing.F) {
	_, cv, recs, newer := setFixture(f)
	key := dhtKey(recs[0].Name)
	set, err := MarshalSet(recs)
	if err != nil {
		f.Fatal(err)
	}
	fuzzseed.Add(f, false, set, recs[0].Bytes())
	fuzzseed.Add(f, true, newer.Bytes(), set)
	fuzzseed.Add(f, false, []byte("junk"), set)
	val := newValidator(&Verifier{Certs: cv}, nil)
	f.Fuzz(func(t *testing.T, otherKey bool, a, b []byte) {
		k := key
		if otherKey {
			k = dhtKey(recs[0].Router())
		}
		if err := val.Validate(k, a); err == nil {
			got, err := val.parse(k, a)
			if err != nil || len(got) == 0 {
				t.Fatalf("accepted, then parse: %d entries, %v", len(got), err)
			}
			for _, r := range got {
				if dhtKey(r.Name) != k {
					t.Fatalf("accepted an entry for %s under another key", r.Name)
				}
			}
		}
		if i, err := val.Select(k, [][]byte{a, b}); err == nil && (i < 0 || i > 1) {
			t.Fatalf("Select = %d", i)
		}
	})
}
