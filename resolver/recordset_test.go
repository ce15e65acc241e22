package resolver

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"github.com/gdpnet/gdpnet/internal/fuzzseed"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
)

// TestStaticLookupAll: three routers hold one capsule; LookupAll returns
// all three newest first, Lookup the newest, and a router's withdrawal or
// newer record touches only its own entry.
func TestStaticLookupAll(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, goldenBase)
	d := w.domain("replicas")
	now := goldenBase.Add(time.Minute)
	cv := trust(now, d)
	cv.Now = func() time.Time { return now }
	s := NewStatic(&Verifier{Certs: cv})
	defer s.Close()
	var recs []*Record
	for i, desc := range []string{"router a", "router b", "router c"} {
		r := w.router(d, desc)
		name, chain := w.capsuleAt(r, "replicated", time.Hour)
		rec := w.location(r, name, chain, uint64(10+i))
		if err := s.Publish(ctx, rec); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	name := recs[0].Name
	all, err := s.LookupAll(ctx, name)
	if err != nil || len(all) != 3 {
		t.Fatalf("LookupAll: %d records, %v; want 3", len(all), err)
	}
	for i, want := range []*Record{recs[2], recs[1], recs[0]} {
		if all[i] != want {
			t.Fatalf("LookupAll[%d] is %s seq %d, want newest first", i, all[i].Router(), all[i].Sequence)
		}
	}
	if got, err := s.Lookup(ctx, name); err != nil || got != recs[2] {
		t.Fatalf("Lookup: %v %v, want the newest", got, err)
	}
	if err := s.Publish(ctx, recs[1]); err != nil { // same record again: fine
		t.Fatal(err)
	}
	if err := s.WithdrawIf(ctx, name, recs[2].Router()); err != nil {
		t.Fatal(err)
	}
	if err := s.WithdrawIf(ctx, name, recs[2].Router()); !errors.Is(err, ErrNotPublished) {
		t.Fatalf("second withdraw: %v, want ErrNotPublished", err)
	}
	if all, err = s.LookupAll(ctx, name); err != nil || len(all) != 2 || all[0] != recs[1] {
		t.Fatalf("after withdrawing c: %d records, %v; want b, a", len(all), err)
	}
}

// setFixture is three routers' records for one name, in a trusted
// domain, and a newer record of the first router.
func setFixture(t testing.TB) (*world, *certs.Verifier, []*Record, *Record) {
	w := newWorld(t, goldenBase)
	d := w.domain("set")
	cv := trust(goldenBase.Add(time.Minute), d)
	var recs []*Record
	var newerA *Record
	for i, desc := range []string{"set router a", "set router b", "set router c"} {
		r := w.router(d, desc)
		name, chain := w.capsuleAt(r, "set capsule", time.Hour)
		recs = append(recs, w.location(r, name, chain, uint64(100+i)))
		if i == 0 {
			newerA = w.location(r, name, chain, 500)
		}
	}
	return w, cv, recs, newerA
}

func TestRecordSetCodec(t *testing.T) {
	w, cv, recs, _ := setFixture(t)
	b, err := MarshalSet(recs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseSet(b)
	if err != nil || len(got) != 3 {
		t.Fatalf("ParseSet: %d entries, %v", len(got), err)
	}
	for i := 1; i < len(got); i++ {
		a, c := got[i-1].Router(), got[i].Router()
		if bytes.Compare(a[:], c[:]) >= 0 {
			t.Fatal("entries not sorted by router")
		}
	}
	// A single record (the format before sets) reads as a set of one.
	if one, err := ParseSet(recs[0].Bytes()); err != nil || len(one) != 1 || !bytes.Equal(one[0].Bytes(), recs[0].Bytes()) {
		t.Fatalf("single record as a set: %v", err)
	}
	other := w.router(w.domain("elsewhere"), "other")
	otherName, otherChain := w.capsuleAt(other, "another capsule", time.Hour)
	otherRec := w.location(other, otherName, otherChain, 1)
	tampered := bytes.Clone(b)
	tampered[len(tampered)-1] ^= 1 // the last entry's signature
	bad := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"empty array", []byte{0x80}, ErrMalformed},
		{"tampered entry", tampered, ErrBadSignature},
		{"two names", mustCBOR(t, [][]byte{recs[0].Bytes(), otherRec.Bytes()}), ErrMalformed},
		{"router twice", mustCBOR(t, [][]byte{recs[0].Bytes(), recs[0].Bytes()}), ErrMalformed},
		{"unsorted", mustCBOR(t, unsorted(recs)), ErrMalformed},
		{"trailing byte", append(bytes.Clone(b), 0), ErrMalformed},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseSet(tc.b); !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := MarshalSet([]*Record{recs[0], recs[0]}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("marshal with a router twice: %v", err)
	}
	// The validator refuses a set with one entry from an untrusted
	// domain, though the other entries are fine.
	val := newValidator(&Verifier{Certs: cv}, nil)
	key := dhtKey(recs[0].Name)
	if err := val.Validate(key, b); err != nil {
		t.Fatalf("valid set refused: %v", err)
	}
	foreign := w.router(w.domain("untrusted"), "foreign")
	_, fchain := w.capsuleAt(foreign, "set capsule", time.Hour)
	mixed, err := MarshalSet(append([]*Record{w.location(foreign, recs[0].Name, fchain, 1)}, recs...))
	if err != nil {
		t.Fatal(err)
	}
	if err := val.Validate(key, mixed); !errors.Is(err, ErrNotMember) {
		t.Fatalf("set with an untrusted entry: %v, want ErrNotMember", err)
	}
}

func mustCBOR(t *testing.T, v [][]byte) []byte {
	b, err := codec.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func unsorted(recs []*Record) [][]byte {
	s := append([]*Record(nil), recs...)
	sortByRouter(s)
	return [][]byte{s[1].Bytes(), s[0].Bytes()}
}

// TestRecordSetSelect: the value holding the newest entry for the most
// routers wins; on a tie the earlier (incoming) one.
func TestRecordSetSelect(t *testing.T) {
	_, cv, recs, aNewer := setFixture(t)
	val := newValidator(&Verifier{Certs: cv}, nil)
	key := dhtKey(recs[0].Name)
	enc := func(rs ...*Record) []byte {
		b, err := MarshalSet(rs)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b, c := recs[0], recs[1], recs[2]
	tests := []struct {
		name   string
		values [][]byte
		want   int
	}{
		{"superset wins", [][]byte{enc(a), enc(a, b, c)}, 1},
		{"superset wins first", [][]byte{enc(a, b, c), enc(b)}, 0},
		{"concurrent additions: incoming kept", [][]byte{enc(c), enc(a)}, 0},
		{"newer entry beats older", [][]byte{enc(a, b), enc(aNewer, b)}, 1},
		{"more newest entries win", [][]byte{enc(aNewer), enc(a, b, c)}, 1},
		{"garbage skipped", [][]byte{[]byte("junk"), enc(a)}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := val.Select(key, tc.values)
			if err != nil || got != tc.want {
				t.Fatalf("Select = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

// TestDHTConcurrentPublishers: three routers' nodes publish one capsule
// at the same moment; after at most one republish round every node's
// LookupAll returns all three, and a withdrawal leaves the other two.
func TestDHTConcurrentPublishers(t *testing.T) {
	w := newWorld(t, time.Now().Add(-time.Minute))
	d := w.domain("replicas")
	cv := certs.NewVerifier(d.Meta)
	c := startDHTs(t, w, d, cv, false, "replicas", 4, 3, func(c *DHTConfig) { c.MinPuts = 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pubs := c.nodes[1:]
	recs := make([]*Record, len(pubs))
	for i := range pubs {
		r := c.routers[i+1]
		name, chain := w.capsuleAt(r, "replicated", time.Hour)
		recs[i] = w.location(r, name, chain, NextSequence())
	}
	name := recs[0].Name
	var wg sync.WaitGroup
	for i, n := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A put may reach too few peers while the others race: the
			// republish below repairs it; the record is kept either way.
			if err := n.Publish(ctx, recs[i]); err != nil && !errors.Is(err, ErrFewPeers) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, n := range pubs {
		n.republishOnce(ctx)
	}
	want := func(k int) {
		t.Helper()
		for i, n := range c.nodes {
			all, err := n.LookupAll(ctx, name)
			if err != nil || len(all) != k {
				t.Fatalf("node %d LookupAll: %d records, %v; want %d", i, len(all), err, k)
			}
			if got, err := n.Lookup(ctx, name); err != nil || got.Name != name {
				t.Fatalf("node %d Lookup: %v", i, err)
			}
		}
	}
	want(3)
	if err := pubs[1].WithdrawIf(ctx, name, recs[1].Router()); err != nil {
		t.Fatal(err)
	}
	want(2)
	for i, n := range c.nodes {
		all, _ := n.LookupAll(ctx, name)
		for _, r := range all {
			if r.Router() == recs[1].Router() {
				t.Fatalf("node %d still finds the withdrawn router", i)
			}
		}
	}
}

// TestRecordSetVector checks testdata/set.hex (a set of two records)
// parses, re-encodes to the same bytes, and is the block PROTOCOL.md §6.7
// prints.
func TestRecordSetVector(t *testing.T) {
	if *update {
		golden := goldenRecords(t)
		w := newWorld(t, goldenBase)
		d := w.domain("golden")
		r2 := w.router(d, "router golden 2")
		_, chain2 := w.capsuleAt(r2, "golden", 12*time.Hour)
		second := w.location(r2, golden["location"].Name, chain2, 7, "127.0.0.1:4434")
		b, err := MarshalSet([]*Record{golden["location"], second})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("testdata/set.hex", []byte(hex.EncodeToString(b)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile("testdata/set.hex")
	if err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	set, err := ParseSet(b)
	if err != nil || len(set) != 2 {
		t.Fatalf("ParseSet(set.hex): %d entries, %v", len(set), err)
	}
	again, err := MarshalSet(set)
	if err != nil || !bytes.Equal(again, b) {
		t.Fatalf("re-encoding differs: %v", err)
	}
	doc, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Skipf("no docs: %v", err)
	}
	s := string(doc)
	i := strings.Index(s, "### 6.7")
	if i < 0 {
		t.Fatal("PROTOCOL.md has no §6.7")
	}
	s = s[i:]
	const open = "Set bytes:\n\n```\n"
	j := strings.Index(s, open)
	if j < 0 {
		t.Fatal("§6.7 has no set-bytes block")
	}
	s = s[j+len(open):]
	if block := strings.ReplaceAll(s[:strings.Index(s, "```")], "\n", ""); block != strings.TrimSpace(string(raw)) {
		t.Fatal("PROTOCOL.md §6.7 bytes differ from testdata/set.hex")
	}
}

// FuzzParseSet: no panic on any value, and whatever parses re-encodes to
// the same bytes (a single record re-encodes as itself).
func FuzzParseSet(f *testing.F) {
	for _, p := range []string{"testdata/set.hex", "testdata/location.hex", "testdata/tombstone.hex"} {
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
		set, err := ParseSet(b)
		if err != nil {
			return
		}
		if len(set) == 1 && len(b) > 0 && b[0]>>5 == 5 {
			if !bytes.Equal(set[0].Bytes(), b) {
				t.Fatal("single record does not round-trip")
			}
			return
		}
		out, err := MarshalSet(set)
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
