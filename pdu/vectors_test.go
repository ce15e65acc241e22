package pdu

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// vector is one record of testdata/vectors.txt.
type vector struct {
	line   int
	fields map[string]string
}

func (v vector) get(t testing.TB, key string) string {
	t.Helper()
	s, ok := v.fields[key]
	if !ok {
		t.Fatalf("vector %q (line %d): no %q field", v.fields["name"], v.line, key)
	}
	return s
}

func (v vector) hex(t testing.TB, key string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(v.get(t, key)), ""))
	if err != nil {
		t.Fatalf("vector %q field %s: %v", v.fields["name"], key, err)
	}
	return b
}

// loadVectors parses testdata/vectors.txt: records separated by blank lines,
// "key: value" lines, indented continuation lines, '#' comments.
func loadVectors(t testing.TB) []vector {
	t.Helper()
	f, err := os.Open("testdata/vectors.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		out  []vector
		cur  *vector
		last string
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#"):
		case strings.TrimSpace(line) == "":
			cur = nil
		case strings.HasPrefix(line, " "):
			if cur == nil || last == "" {
				t.Fatalf("vectors.txt:%d: continuation outside a field", n)
			}
			cur.fields[last] += " " + strings.TrimSpace(line)
		default:
			k, val, ok := strings.Cut(line, ":")
			if !ok {
				t.Fatalf("vectors.txt:%d: want key: value", n)
			}
			if cur == nil {
				out = append(out, vector{line: n, fields: map[string]string{}})
				cur = &out[len(out)-1]
			}
			if _, dup := cur.fields[k]; dup {
				t.Fatalf("vectors.txt:%d: duplicate key %q", n, k)
			}
			cur.fields[k] = strings.TrimSpace(val)
			last = k
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("vectors.txt: no vectors")
	}
	return out
}

var vectorErrors = map[string]error{
	"short":         ErrShort,
	"version":       ErrVersion,
	"header-length": ErrHeaderLen,
	"length":        ErrLength,
	"option":        ErrOption,
	"unknown-type":  ErrUnknownType,
	"code":          ErrCode,
	"too-big":       ErrTooBig,
}

// parseByString finds the value in 0..255 whose String() is s.
func parseByString[T ~uint8](t testing.TB, s string) T {
	t.Helper()
	for i := range 256 {
		if v := T(i); any(v).(interface{ String() string }).String() == s {
			return v
		}
	}
	t.Fatalf("no value prints as %q", s)
	return 0
}

// header builds the Header a valid vector's fields describe.
func (v vector) header(t testing.TB) Header {
	t.Helper()
	seq, err := strconv.ParseUint(v.get(t, "seq"), 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	ttl, err := strconv.ParseUint(v.get(t, "ttl"), 10, 8)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := ParseName(v.get(t, "dst"))
	if err != nil {
		t.Fatal(err)
	}
	src, err := ParseName(v.get(t, "src"))
	if err != nil {
		t.Fatal(err)
	}
	return Header{
		Type:     parseByString[Type](t, v.get(t, "type")),
		TTL:      uint8(ttl),
		Flags:    parseByString[Flags](t, v.get(t, "flags")),
		Code:     parseByString[Code](t, v.get(t, "code")),
		Sequence: uint32(seq),
		Dst:      dst,
		Src:      src,
		Options:  nilIfEmpty(v.hex(t, "options")),
		Payload:  nilIfEmpty(v.hex(t, "payload")),
	}
}

func equalHeader(a, b *Header) bool {
	return a.Type == b.Type && a.TTL == b.TTL && a.Flags == b.Flags && a.Code == b.Code &&
		a.Sequence == b.Sequence && a.Dst == b.Dst && a.Src == b.Src &&
		bytes.Equal(a.Options, b.Options) && bytes.Equal(a.Payload, b.Payload)
}

// TestVectors checks every golden vector both ways: the bytes decode to the
// listed fields (or to the listed error), and the fields encode to the bytes.
func TestVectors(t *testing.T) {
	vs := loadVectors(t)
	byName := map[string]vector{}
	for _, v := range vs {
		byName[v.get(t, "name")] = v
	}
	for _, v := range vs {
		t.Run(v.get(t, "name"), func(t *testing.T) {
			raw := v.hex(t, "hex")
			var got Header
			err := Decode(raw, &got)
			if e, ok := v.fields["error"]; ok {
				want, known := vectorErrors[e]
				if !known {
					t.Fatalf("unknown error name %q", e)
				}
				if !errors.Is(err, want) {
					t.Fatalf("Decode error = %v, want %v", err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			want := v.header(t)
			if !equalHeader(&got, &want) {
				t.Fatalf("Decode =\n %+v\nwant\n %+v", got, want)
			}
			enc, err := want.Marshal()
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			canon := raw
			if _, ok := v.fields["canonical"]; ok {
				canon = v.hex(t, "canonical")
			}
			if !bytes.Equal(enc, canon) {
				t.Fatalf("Marshal =\n%x\nwant\n%x", enc, canon)
			}
			if r, ok := v.fields["reporter"]; ok {
				rep, ok := got.Reporter()
				if !ok || rep.String() != r {
					t.Fatalf("Reporter() = %v, %v; want %s", rep, ok, r)
				}
			}
			if of, ok := v.fields["nak-of"]; ok {
				orig := byName[of].hex(t, "hex")
				nak, ok := NAK(orig, got.Code, got.Src)
				if !ok {
					t.Fatalf("NAK(%s) refused", of)
				}
				b, err := nak.Marshal()
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(b, raw) {
					t.Fatalf("NAK(%s) =\n%x\nwant\n%x", of, b, raw)
				}
			}
		})
	}
}

// TestVectorsGenerated checks that vectors.txt is what the independent
// generator writes, when python3 is installed.
func TestVectorsGenerated(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	cmd := exec.Command(py, "gen_vectors.py")
	cmd.Dir = "testdata"
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gen_vectors.py: %v", err)
	}
	want, err := os.ReadFile("testdata/vectors.txt")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, want) {
		t.Fatal("testdata/vectors.txt is stale: run (cd pdu/testdata && python3 gen_vectors.py > vectors.txt)")
	}
}
