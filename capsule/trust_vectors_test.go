package capsule

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
)

const trustVectorsFile = "testdata/trust_vectors.txt"

// trustFixture is the fixed world of the receipt and placement vectors
// (docs/PROTOCOL.md §8.7): an owner, a writer (testKey) and a server key
// from fixed seeds, fixed metadata, and one heartbeat.
type trustFixture struct {
	owner, server ed25519.PrivateKey
	meta, srvMeta *certs.Metadata
	hb            *Heartbeat
	receipt       *Receipt
	placement     *Placement
}

func newTrustFixture(t testing.TB) *trustFixture {
	f := &trustFixture{
		owner:  ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x4f}, 32)),
		server: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x53}, 32)),
	}
	created := time.Unix(1_700_000_000, 0).UTC()
	var nonce [16]byte
	for i := range nonce {
		nonce[i] = byte(i + 1)
	}
	f.meta = &certs.Metadata{Kind: certs.KindCapsule, Key: f.owner.Public().(ed25519.PublicKey), WriterKey: testInfo.Writer,
		Created: created, Nonce: nonce, Description: "trust vectors"}
	f.srvMeta = &certs.Metadata{Kind: certs.KindServer, Key: f.server.Public().(ed25519.PublicKey), Created: created, Nonce: nonce,
		Description: "vector server"}
	c := f.meta.Name()
	f.hb = &Heartbeat{Capsule: c, Seqno: 1, Root: sha256.Sum256([]byte("root")), Time: 1_700_000_000_000_000_000}
	f.hb.Sign(testKey)
	f.receipt = NewReceipt(f.hb, f.srvMeta.Name(), f.server)
	var err error
	f.placement, err = SignPlacement(f.owner, f.meta, []pdu.Name{f.srvMeta.Name(), {0xbb}, {0xcc}}, 2, created)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *trustFixture) vectors() [][2]string {
	var v [][2]string
	add := func(name string, b []byte) { v = append(v, [2]string{name, hex.EncodeToString(b)}) }
	c, s := f.meta.Name(), f.srvMeta.Name()
	d := f.hb.Digest()
	add("owner.public", f.meta.Key)
	add("server.public", f.srvMeta.Key)
	add("writer.public", testInfo.Writer)
	add("capsule.meta", f.meta.Marshal())
	add("capsule", c[:])
	add("server.meta", f.srvMeta.Marshal())
	add("server", s[:])
	add("heartbeat.wire", f.hb.Marshal())
	add("heartbeat.digest", d[:])
	add("receipt.body", f.receipt.Body())
	add("receipt.sigstructure", sigInputAAD(ReceiptAAD, f.receipt.Body()))
	add("receipt.wire", f.receipt.Marshal())
	add("placement.body", f.placement.Body())
	add("placement.sigstructure", sigInputAAD(PlacementAAD, f.placement.Body()))
	add("placement.wire", f.placement.Marshal())
	return v
}

// TestTrustVectors: the receipt and placement vectors are what the code
// produces, decode and verify; TestTrustVectorsIndependent checks them
// without this code.
func TestTrustVectors(t *testing.T) {
	f := newTrustFixture(t)
	want := f.vectors()
	if *update {
		var buf bytes.Buffer
		buf.WriteString("# docs/PROTOCOL.md §8.7 receipt and placement vectors: name, then hex. Regenerate with go test ./capsule -run TestTrustVectors -update\n")
		for _, kv := range want {
			fmt.Fprintf(&buf, "%s %s\n", kv[0], kv[1])
		}
		if err := os.WriteFile(trustVectorsFile, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(trustVectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if n, h, ok := strings.Cut(l, " "); ok && !strings.HasPrefix(l, "#") {
			got[n] = h
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d vectors in %s, want %d", len(got), trustVectorsFile, len(want))
	}
	for _, kv := range want {
		if got[kv[0]] != kv[1] {
			t.Errorf("vector %s differs from the code's output", kv[0])
		}
	}
	rb, _ := hex.DecodeString(got["receipt.wire"])
	rc, err := UnmarshalReceipt(rb)
	if err != nil || rc.Verify(f.hb, f.srvMeta.Name(), f.srvMeta.Key) != nil {
		t.Fatalf("receipt vector: %v", err)
	}
	pb, _ := hex.DecodeString(got["placement.wire"])
	pl, err := UnmarshalPlacement(pb)
	if err != nil || pl.Verify(f.meta) != nil || pl.W != 2 || len(pl.Replicas) != 3 {
		t.Fatalf("placement vector: %v", err)
	}
}

// TestTrustVectorsIndependent runs testdata/check_trust.py: its own CBOR
// decoder and Sig_structure, and the Python cryptography package's
// Ed25519, check every receipt and placement vector field by field, and
// the wire messages of capsuled/wire that carry them.
func TestTrustVectorsIndependent(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	if exec.Command(py, "-c", "import cryptography").Run() != nil {
		t.Skip("python3 has no cryptography package")
	}
	out, err := exec.Command(py, "testdata/check_trust.py").CombinedOutput()
	if err != nil {
		t.Fatalf("check_trust.py: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// TestReceiptAndPlacementRefusals: tampering, another key, another
// heartbeat or server, and malformed placements are refused.
func TestReceiptAndPlacementRefusals(t *testing.T) {
	f := newTrustFixture(t)
	s := f.srvMeta.Name()
	if err := f.receipt.Verify(f.hb, s, f.owner.Public().(ed25519.PublicKey)); err == nil {
		t.Fatal("receipt verified under another key")
	}
	if err := f.receipt.Verify(f.hb, pdu.Name{1}, f.srvMeta.Key); err == nil {
		t.Fatal("receipt verified for another server")
	}
	other := *f.hb
	other.Seqno = 2
	other.Sign(testKey)
	if err := f.receipt.Verify(&other, s, f.srvMeta.Key); err == nil {
		t.Fatal("receipt verified for another heartbeat")
	}
	w := f.receipt.Marshal()
	for i := range w {
		b := bytes.Clone(w)
		b[i] ^= 0x01
		if r, err := UnmarshalReceipt(b); err == nil && r.Verify(f.hb, s, f.srvMeta.Key) == nil {
			t.Fatalf("receipt with bit flipped at byte %d verifies", i)
		}
	}
	p := f.placement.Marshal()
	for i := range p {
		b := bytes.Clone(p)
		b[i] ^= 0x01
		if pl, err := UnmarshalPlacement(b); err == nil && pl.Verify(f.meta) == nil {
			t.Fatalf("placement with bit flipped at byte %d verifies", i)
		}
	}
	if _, err := SignPlacement(f.server, f.meta, []pdu.Name{s}, 1, time.Now()); err == nil {
		t.Fatal("placement signed with a key that is not the owner's")
	}
	if _, err := SignPlacement(f.owner, f.meta, []pdu.Name{s, s}, 1, time.Now()); err == nil {
		t.Fatal("placement with a replica listed twice")
	}
	if _, err := SignPlacement(f.owner, f.meta, []pdu.Name{s}, 2, time.Now()); err == nil {
		t.Fatal("placement with w above n")
	}
}
