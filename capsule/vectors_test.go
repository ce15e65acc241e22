package capsule

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.txt")

const vectorsFile = "testdata/vectors.txt"

// goldenVectors builds the docs/PROTOCOL.md §7 test vectors: a four-entry
// log (three records and a hole) of a fixed capsule and writer key, its
// tree, a signed heartbeat, and proofs.
func goldenVectors() [][2]string {
	var v [][2]string
	add := func(name string, b []byte) { v = append(v, [2]string{name, hex.EncodeToString(b)}) }
	key := testKey
	add("writer.seed", key.Seed())
	add("writer.public", testInfo.Writer)
	add("capsule", testName[:])
	const t0 = int64(1_700_000_000_000_000_000)
	r1 := NewRecord(testName, 1, t0, Hash{}, []byte("hello, capsule"))
	r2 := NewRecord(testName, 2, t0+1_000_000, r1.Hash(), nil)
	h3 := NewHole(testName, 3, r2.Hash())
	data4 := make([]byte, 16)
	for i := range data4 {
		data4[i] = byte(i)
	}
	r4 := NewRecord(testName, 4, t0+2_000_000, h3.Hash(), data4)
	var mt MemTree
	for i, e := range []Record{r1, r2, h3, r4} {
		p := fmt.Sprintf("entry%d.", i+1)
		add(p+"wire", e.Marshal())
		add(p+"header", e.AppendHeader(nil))
		h := e.Hash()
		add(p+"hash", h[:])
		l := LeafHash(h)
		add(p+"leaf", l[:])
		mt.Append(h)
	}
	n01, _ := mt.Node(1, 0)
	n23, _ := mt.Node(1, 1)
	add("node.1.0", n01[:])
	add("node.1.1", n23[:])
	r3, _ := RootAt(&mt, 3)
	add("root.3", r3[:])
	root := mt.Root()
	add("root.4", root[:])
	hb := &Heartbeat{Capsule: testName, Seqno: 4, Root: root, Time: t0 + 3_000_000, Holes: []uint64{3}}
	hb.Sign(key)
	add("heartbeat.body", hb.Body())
	add("heartbeat.sigstructure", sigInput(hb.Body()))
	add("heartbeat.wire", hb.Marshal())
	ip, _ := InclusionPath(&mt, 1, 4)
	add("inclusion.2of4.wire", (&InclusionProof{Index: 1, Size: 4, Path: ip}).Marshal())
	cp, _ := ConsistencyPath(&mt, 3, 4)
	add("consistency.3to4.wire", (&ConsistencyProof{Old: 3, New: 4, Path: cp}).Marshal())
	empty := EmptyRoot
	add("root.0", empty[:])
	return v
}

func readVectors(t testing.TB) map[string][]byte {
	f, err := os.Open(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]byte{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, hx, ok := strings.Cut(line, " ")
		b, err := hex.DecodeString(strings.TrimSpace(hx))
		if !ok || err != nil {
			t.Fatalf("bad vector line %q", line)
		}
		out[name] = b
	}
	return out
}

func TestVectors(t *testing.T) {
	want := goldenVectors()
	if *update {
		var buf bytes.Buffer
		buf.WriteString("# docs/PROTOCOL.md §7 test vectors: name, then hex. Regenerate with go test ./capsule -run TestVectors -update\n")
		for _, kv := range want {
			fmt.Fprintf(&buf, "%s %s\n", kv[0], kv[1])
		}
		if err := os.WriteFile(vectorsFile, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := readVectors(t)
	if len(got) != len(want) {
		t.Fatalf("%d vectors in %s, want %d", len(got), vectorsFile, len(want))
	}
	for _, kv := range want {
		if hex.EncodeToString(got[kv[0]]) != kv[1] {
			t.Errorf("vector %s differs from the code's output", kv[0])
		}
	}
	// Check the vectors independently of the code that wrote them.
	for i := 1; i <= 4; i++ {
		p := fmt.Sprintf("entry%d.", i)
		e, err := UnmarshalRecord(got[p+"wire"])
		if err != nil {
			t.Fatal(err)
		}
		if h := sha256.Sum256(got[p+"header"]); !bytes.Equal(h[:], got[p+"hash"]) || e.Hash() != Hash(h) {
			t.Fatalf("%s hash is not SHA-256 of the header", p)
		}
		if l := sha256.Sum256(append([]byte{0}, got[p+"hash"]...)); !bytes.Equal(l[:], got[p+"leaf"]) {
			t.Fatalf("%s leaf is not SHA-256(0x00 || hash)", p)
		}
	}
	node := func(a, b []byte) []byte {
		h := sha256.Sum256(append(append([]byte{1}, a...), b...))
		return h[:]
	}
	if !bytes.Equal(node(got["entry1.leaf"], got["entry2.leaf"]), got["node.1.0"]) ||
		!bytes.Equal(node(got["node.1.0"], got["node.1.1"]), got["root.4"]) ||
		!bytes.Equal(node(got["node.1.0"], got["entry3.leaf"]), got["root.3"]) {
		t.Fatal("tree vectors do not follow RFC 9162 hashing")
	}
	hb, err := UnmarshalHeartbeat(got["heartbeat.wire"])
	if err != nil {
		t.Fatal(err)
	}
	if err := hb.Verify(testName, testInfo.Writer); err != nil {
		t.Fatal(err)
	}
	ip, err := UnmarshalInclusionProof(got["inclusion.2of4.wire"])
	if err != nil || ip.Verify(Hash(got["entry2.hash"]), hb.Root) != nil {
		t.Fatalf("inclusion vector: %v", err)
	}
	cp, err := UnmarshalConsistencyProof(got["consistency.3to4.wire"])
	if err != nil || cp.Verify(Hash(got["root.3"]), hb.Root) != nil {
		t.Fatalf("consistency vector: %v", err)
	}
}

// TestProtocolDocQuotesVectors keeps docs/PROTOCOL.md §7 and the vectors
// from drifting apart: every vector the section quotes must be there.
func TestProtocolDocQuotesVectors(t *testing.T) {
	doc, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Skip("docs/PROTOCOL.md not found:", err)
	}
	_, sec, ok := strings.Cut(string(doc), "## 7. DataCapsules")
	if !ok {
		t.Fatal("no §7 in docs/PROTOCOL.md")
	}
	if i := strings.Index(sec, "\n## "); i >= 0 {
		sec = sec[:i]
	}
	flat := strings.Join(strings.Fields(sec), "")
	got := readVectors(t)
	for _, name := range []string{"writer.public", "capsule", "entry1.wire", "entry1.hash", "entry1.leaf",
		"entry3.wire", "entry3.hash", "node.1.0", "node.1.1", "root.3", "root.4",
		"heartbeat.body", "heartbeat.wire", "inclusion.2of4.wire", "consistency.3to4.wire"} {
		if !strings.Contains(flat, hex.EncodeToString(got[name])) {
			t.Errorf("docs/PROTOCOL.md §7 does not quote vector %s", name)
		}
	}
}
