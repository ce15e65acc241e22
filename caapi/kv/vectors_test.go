package kv

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.txt")

const vectorsFile = "testdata/vectors.txt"

// goldenVectors builds the docs/PROTOCOL.md §10 vectors: a put, a delete
// and a one-part checkpoint of the state {"a": "1", "b/c": ""}, and that
// state's digest.
func goldenVectors(t *testing.T) [][2]string {
	t.Helper()
	put := &Op{Kind: OpPut, Key: []byte("user/alice"), Value: []byte("hello"), Ckpt: 3}
	del := &Op{Kind: OpDelete, Key: []byte("user/bob")}
	d := newDigester()
	ents := []Entry{{Key: []byte("a"), Value: []byte("1"), Seqno: 1, Time: 1_700_000_000_000_000_000},
		{Key: []byte("b/c"), Value: []byte{}, Seqno: 2, Time: 1_700_000_000_001_000_000}}
	for _, e := range ents {
		d.add(e.Key, e.Value, e.Seqno, int64(e.Time))
	}
	ck := &Op{Kind: OpCheckpoint, Base: 2, BaseTime: 1_700_000_000_001_000_000, Parts: 1, Digest: d.sum(), Entries: ents}
	var out [][2]string
	for _, v := range []struct {
		name string
		op   *Op
	}{{"put", put}, {"delete", del}, {"checkpoint", ck}} {
		b, err := v.op.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, [2]string{v.name, hex.EncodeToString(b)})
	}
	return append(out, [2]string{"state.digest", hex.EncodeToString(ck.Digest)})
}

func readVectors(t testing.TB) map[string][]byte {
	t.Helper()
	f, err := os.Open(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]byte{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, h, _ := strings.Cut(line, " ")
		b, err := hex.DecodeString(h)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = b
	}
	return out
}

func TestVectors(t *testing.T) {
	want := goldenVectors(t)
	if *update {
		var buf bytes.Buffer
		buf.WriteString("# docs/PROTOCOL.md §10 KV record vectors: name, then hex. Regenerate with go test ./caapi/kv -run TestVectors -update\n")
		for _, v := range want {
			buf.WriteString(v[0] + " " + v[1] + "\n")
		}
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorsFile, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := readVectors(t)
	for _, v := range want {
		if hex.EncodeToString(got[v[0]]) != v[1] {
			t.Errorf("vector %s differs from the code's output", v[0])
		}
	}
	// Decode each and check the digest by hand: SHA-256 of the prefix and
	// each entry's CBOR array, written out here byte by byte.
	for _, n := range []string{"put", "delete", "checkpoint"} {
		if _, err := UnmarshalOp(got[n]); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
	}
	h := sha256.New()
	h.Write([]byte("gdpnet kv state v1\x00"))
	h.Write([]byte{0x84, 0x41, 'a', 0x41, '1', 0x01, 0x1b, 0x17, 0x97, 0x9c, 0xfe, 0x36, 0x2a, 0x00, 0x00})
	h.Write([]byte{0x84, 0x43, 'b', '/', 'c', 0x40, 0x02, 0x1b, 0x17, 0x97, 0x9c, 0xfe, 0x36, 0x39, 0x42, 0x40})
	if !bytes.Equal(h.Sum(nil), got["state.digest"]) {
		t.Fatal("state digest does not follow the rule of PROTOCOL §10")
	}
}

// TestProtocolDocQuotesVectors keeps docs/PROTOCOL.md §10 and the vectors
// together.
func TestProtocolDocQuotesVectors(t *testing.T) {
	doc, err := os.ReadFile("../../docs/PROTOCOL.md")
	if err != nil {
		t.Skip("docs/PROTOCOL.md not found:", err)
	}
	_, sec, ok := strings.Cut(string(doc), "## 10. Key–value records")
	if !ok {
		t.Fatal("no §10 in docs/PROTOCOL.md")
	}
	if i := strings.Index(sec, "\n## "); i >= 0 {
		sec = sec[:i]
	}
	flat := strings.Join(strings.Fields(sec), "")
	for name, b := range readVectors(t) {
		if !strings.Contains(flat, hex.EncodeToString(b)) {
			t.Errorf("docs/PROTOCOL.md §10 does not quote vector %s", name)
		}
	}
}
