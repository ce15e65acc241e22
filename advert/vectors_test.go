package advert

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"github.com/gdpnet/gdpnet/internal/fuzzseed"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gdpnet/gdpnet/pdu"
)

func fill(b byte) pdu.Name {
	var n pdu.Name
	for i := range n {
		n[i] = b
	}
	return n
}

// vectorMessages are the messages behind testdata/control_vectors.txt
// (docs/PROTOCOL.md §5.5).
var vectorMessages = map[string]any{
	"advertise": &Advertise{
		Seq:      1_800_000_000_000_000_000,
		Endpoint: []byte{0xe0, 0xe1},
		RtCert:   []byte{0xc0, 0xc1, 0xc2},
		Names: []AdvertName{
			{Name: fill(0x11)},
			{Name: fill(0x22), Target: []byte{0xa0}, AdCert: []byte{0xad}},
		},
	},
	"withdraw": &Withdraw{Seq: 1_800_000_000_000_000_001, Names: []pdu.Name{fill(0x22)}},
	"result": &Result{Seq: 1_800_000_000_000_000_000, Names: []NameResult{
		{Name: fill(0x11), Status: StatusOK, Expiry: 1_800_003_600},
		{Name: fill(0x22), Status: StatusBadSignature, Detail: "adcert"},
	}},
	"advertise_wait": &Advertise{
		Seq:      1_800_000_000_000_000_002,
		Endpoint: []byte{0xe0, 0xe1},
		RtCert:   []byte{0xc0, 0xc1, 0xc2},
		Names:    []AdvertName{{Name: fill(0x22), Target: []byte{0xa0}, AdCert: []byte{0xad}}},
		Wait:     10_000,
	},
	"result_published": &Result{Seq: 1_800_000_000_000_000_002, Names: []NameResult{
		{Name: fill(0x22), Status: StatusOK, Expiry: 1_800_003_600, Published: PublishDone},
	}},
}

func parseVector(kind string, b []byte) (any, error) {
	switch kind {
	case "advertise", "advertise_wait":
		return ParseAdvertise(b)
	case "withdraw":
		return ParseWithdraw(b)
	default:
		return ParseResult(b)
	}
}

func readVectors(t *testing.T) map[string][]byte {
	t.Helper()
	f, err := os.Open("testdata/control_vectors.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]byte{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		kind, hx, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("bad vector line %q", line)
		}
		b, err := hex.DecodeString(strings.TrimSpace(hx))
		if err != nil {
			t.Fatal(err)
		}
		out[kind] = b
	}
	return out
}

// TestControlVectors checks both ways: the documented bytes decode to the
// messages above, and the messages encode to the documented bytes.
func TestControlVectors(t *testing.T) {
	vecs := readVectors(t)
	for kind, msg := range vectorMessages {
		t.Run(kind, func(t *testing.T) {
			want, ok := vecs[kind]
			if !ok {
				t.Fatalf("no %s vector", kind)
			}
			got, err := codec.Marshal(msg)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("encoding\n got %x\nwant %x", got, want)
			}
			parsed, err := parseVector(kind, want)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(parsed, msg) {
				t.Fatalf("decoded %+v, want %+v", parsed, msg)
			}
		})
	}
}

func TestControlRefusesNonCanonical(t *testing.T) {
	vecs := readVectors(t)
	adv := vecs["advertise"]
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"not a map", []byte{0x01}},
		{"indefinite map", append([]byte{0xbf}, append(adv[1:], 0xff)...)},
		{"trailing byte", append(append([]byte(nil), adv...), 0x00)},
		{"unknown key", []byte{0xa1, 0x18, 0x63, 0x00}},
		{"name of 31 bytes", []byte{0xa2, 0x01, 0x01, 0x02, 0x81, 0x58, 0x1f}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseAdvertise(tc.b); err == nil {
				t.Fatal("accepted")
			}
			if _, err := ParseWithdraw(tc.b); err == nil {
				t.Fatal("withdraw accepted")
			}
		})
	}
}

// FuzzControl: no payload panics a parser, and whatever parses re-encodes
// to the same bytes.
func FuzzControl(f *testing.F) {
	for _, line := range mustVectors(f) {
		fuzzseed.Add(f, line)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, kind := range []string{"advertise", "withdraw", "result"} { // advertise_wait and result_published parse as these
			m, err := parseVector(kind, b)
			if err != nil {
				continue
			}
			again, err := codec.Marshal(m)
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("%s: parsed but re-encodes to %x (from %x)", kind, again, b)
			}
		}
	})
}

func mustVectors(f *testing.F) [][]byte {
	data, err := os.ReadFile("testdata/control_vectors.txt")
	if err != nil {
		f.Fatal(err)
	}
	var out [][]byte
	for _, line := range strings.Split(string(data), "\n") {
		if kind, hx, ok := strings.Cut(strings.TrimSpace(line), " "); ok && !strings.HasPrefix(kind, "#") {
			if b, err := hex.DecodeString(hx); err == nil {
				out = append(out, b)
			}
		}
	}
	return out
}

// TestProtocolDocVectors: the hex quoted in docs/PROTOCOL.md §5.7 is the
// testdata's.
func TestProtocolDocVectors(t *testing.T) {
	doc, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Skip("docs/PROTOCOL.md not found")
	}
	for kind, b := range readVectors(t) {
		if !strings.Contains(string(doc), kind+" "+hex.EncodeToString(b)) {
			t.Errorf("docs/PROTOCOL.md does not quote the %s vector", kind)
		}
	}
}

// TestControlVectorsIndependentDecoder runs testdata/check_control.py, a
// decoder written in Python (standard library only) from docs/PROTOCOL.md
// §5, over the vectors: they are compared above with messages this
// package encodes, so a field under the wrong key would pass there once
// both the code and the vectors had it.
func TestControlVectorsIndependentDecoder(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3: the independent check of the vectors did not run")
	}
	out, err := exec.Command(py, filepath.Join("testdata", "check_control.py")).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// TestControlWaitAndPublishedBounds: an ADVERTISE asking for a wait above
// MaxWait and a result with a published state outside the table of
// PROTOCOL.md §5.4 are malformed (ErrMalformedControl), as is the wait or
// state 0 written out (absent is its one encoding); MaxWait itself and
// the last state are taken.
func TestControlWaitAndPublishedBounds(t *testing.T) {
	adv := func(wait uint32) []byte {
		a := *vectorMessages["advertise_wait"].(*Advertise)
		a.Wait = wait
		b, err := codec.Marshal(&a)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	res := func(p Publish) []byte {
		r := *vectorMessages["result_published"].(*Result)
		r.Names = []NameResult{r.Names[0]}
		r.Names[0].Published = p
		b, err := codec.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if a, err := ParseAdvertise(adv(MaxWait)); err != nil || a.Wait != MaxWait {
		t.Fatalf("wait %d: %v", MaxWait, err)
	}
	if _, err := ParseAdvertise(adv(MaxWait + 1)); !errors.Is(err, ErrMalformedControl) {
		t.Fatalf("wait %d accepted: %v", MaxWait+1, err)
	}
	if r, err := ParseResult(res(PublishNoResolver)); err != nil || r.Names[0].Published != PublishNoResolver {
		t.Fatalf("published %d: %v", PublishNoResolver, err)
	}
	if _, err := ParseResult(res(PublishNoResolver + 1)); !errors.Is(err, ErrMalformedControl) {
		t.Fatalf("published %d accepted: %v", PublishNoResolver+1, err)
	}
	// Key 5 written out with 0: the vectors end in "05 192710" / "05 01".
	vecs := readVectors(t)
	for kind, tail := range map[string][]byte{"advertise_wait": {0x05, 0x19, 0x27, 0x10}, "result_published": {0x05, 0x01}} {
		b := vecs[kind]
		if !bytes.HasSuffix(b, tail) {
			t.Fatalf("%s vector does not end in %x", kind, tail)
		}
		zero := append(append([]byte(nil), b[:len(b)-len(tail)]...), 0x05, 0x00)
		if _, err := parseVector(kind, zero); err == nil {
			t.Fatalf("%s with key 5 = 0 written out accepted", kind)
		}
	}
}
