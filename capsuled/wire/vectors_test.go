package wire

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/tunnel"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.txt")

// vectorMessages are the documented examples of docs/PROTOCOL.md §8.5,
// built from fixed keys and times so the bytes never change.
func vectorMessages(t testing.TB) map[string]*Message {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	var c pdu.Name
	for i := range c {
		c[i] = byte(i)
	}
	w := capsule.NewWriter(c, key)
	ts := int64(1_700_000_000_000_000_000)
	w.Now = func() time.Time { return time.Unix(0, ts) }
	w.Append([]byte("hello"))
	recs, hb := w.Flush()
	server := pdu.Name{0xaa}
	proof := (&capsule.InclusionProof{Index: 0, Size: 1, Path: []capsule.Hash{}}).Marshal()
	tv := trustVectors(t)
	return map[string]*Message{
		"create-signed": {Op: OpCreate, ID: 10, Capsule: tv.capsule[:], Metadata: tv.meta.Marshal(), AdCert: tv.adcert.Marshal(),
			Replicas: NameBytes(tv.placement.Replicas), W: 2, Placement: tv.placement.Marshal()},
		"append-receipt": {Op: OpAppend, ID: 11, Status: StatusOK, Capsule: tv.capsule[:], Head: 1, Receipt: tv.receipt.Marshal(),
			AdCert: tv.adcert.Marshal(), Server: tv.server.Marshal()},
		"create":          {Op: OpCreate, ID: 1, Capsule: c[:], Metadata: []byte{0xa0}, AdCert: []byte{0xa0}, Replicas: [][]byte{server[:]}, W: 1},
		"create-response": {Op: OpCreate, ID: 1, Status: StatusCreated, Capsule: c[:], Replicas: [][]byte{server[:]}, W: 1},
		"append":          {Op: OpAppend, ID: 2, Capsule: c[:], Records: [][]byte{recs[0].Marshal()}, Heartbeat: hb.Marshal()},
		"append-response": {Op: OpAppend, ID: 2, Status: StatusOK, Capsule: c[:], Head: 1},
		"append-refused":  {Op: OpAppend, ID: 3, Status: StatusConflict, Capsule: c[:], Error: "stale heartbeat"},
		"read":            {Op: OpRead, ID: 4, Capsule: c[:], From: 1, To: 1},
		"read-response":   {Op: OpRead, ID: 4, Status: StatusOK, Capsule: c[:], Records: [][]byte{recs[0].Marshal()}, Heartbeat: hb.Marshal(), From: 1, To: 1, Proof: proof, Head: 1},
		"subscribe":       {Op: OpSubscribe, ID: 5, Capsule: c[:], From: 1, Lease: 30000},
		"event":           {Op: OpEvent, ID: 5, Capsule: c[:], Records: [][]byte{recs[0].Marshal()}, Heartbeat: hb.Marshal(), From: 1, To: 1, Proof: proof, Head: 1},
		"metadata":        {Op: OpMetadata, ID: 6, Capsule: c[:]},
		"proof":           {Op: OpProof, ID: 7, Capsule: c[:], From: 1, Size: 1},
		"sync":            {Op: OpSync, ID: 8, Capsule: c[:], From: 1},
		"sync-response": {Op: OpSync, ID: 8, Status: StatusOK, Capsule: c[:], From: 1, To: 1, Head: 1, Heartbeat: hb.Marshal(),
			Segments: []Segment{{Records: [][]byte{recs[0].Marshal()}, Heartbeat: hb.Marshal()}}},
		"sync-range":          {Op: OpSync, ID: 12, Capsule: c[:], From: 2, To: 5},
		"sync-range-response": {Op: OpSync, ID: 12, Status: StatusOK, Capsule: c[:], From: 2, To: 1, Head: 1, Heartbeat: hb.Marshal()},
		"sync-possession":     {Op: OpSync, ID: 13, Capsule: c[:], From: 2, Hash: possessionNonce()},
		"sync-possession-response": {Op: OpSync, ID: 13, Status: StatusOK, Capsule: c[:], From: 2, To: 1, Head: 1, Heartbeat: hb.Marshal(),
			Possession: PossessionTag(c, server, possessionNonce(), 1, recs[0].Marshal(), recs[0].Marshal())},
		// Session 11: the sampled tag (§8.3), 16 samples stated in key 24
		// both ways; with head 1 the one sample is entry 1.
		"sync-possession-sampled": {Op: OpSync, ID: 14, Capsule: c[:], From: 2, Hash: possessionNonce(), Limit: 16},
		"sync-possession-sampled-response": {Op: OpSync, ID: 14, Status: StatusOK, Capsule: c[:], From: 2, To: 1, Head: 1, Heartbeat: hb.Marshal(),
			Limit: 16, Possession: PossessionSampledTag(c, server, possessionNonce(), 1, 16, recs[0].Marshal(), [][]byte{recs[0].Marshal()})},
		"unknown-capsule": {Op: OpRead, ID: 9, Status: StatusNotFound, Capsule: c[:], Error: "unknown capsule"},
		"append-writer-conflict": {Op: OpAppend, ID: 10, Status: StatusWriterConflict, Capsule: c[:], Head: 1,
			Error: "another writer is active"},
		"delete": {Op: OpDelete, ID: 11, Capsule: c[:], Time: uint64(ts),
			Signature: ed25519.Sign(key, DeleteSigned(c, server, uint64(ts)))},
		"delete-response": {Op: OpDelete, ID: 11, Status: StatusOK, Capsule: c[:]},
		// Session 14: create-signed with the requester's proof at key 13
		// (§8.3): a client's credentials, no source metadata.
		"create-requester": {Op: OpCreate, ID: 15, Capsule: tv.capsule[:], Metadata: tv.meta.Marshal(), AdCert: tv.adcert.Marshal(),
			Replicas: NameBytes(tv.placement.Replicas), W: 2, Placement: tv.placement.Marshal(), Proof: tv.requester},
		// Session 15: the read vector with the same proof at key 13: any
		// request may carry it (§8.3).
		"read-requester": {Op: OpRead, ID: 16, Capsule: c[:], From: 1, To: 1, Proof: tv.requester},
	}
}

// possessionNonce is the nonce of the possession vectors (§8.6): bytes
// 0x40, 0x41, … 0x5f.
func possessionNonce() []byte {
	n := make([]byte, NonceLen)
	for i := range n {
		n[i] = 0x40 + byte(i)
	}
	return n
}

// trustVector is the world of capsule/testdata/trust_vectors.txt, rebuilt
// from the same seeds (testdata/check_trust.py in capsule/ checks that the
// messages below carry exactly those bytes).
type trustVector struct {
	capsule   pdu.Name
	meta      *certs.Metadata
	server    *certs.Metadata
	adcert    *certs.Cert
	receipt   *capsule.Receipt
	placement *capsule.Placement
	// requester is a Requester (key 13 of a CREATE): the credentials of
	// a client (seed 0x43) of a domain (seed 0x44), membership valid
	// 2023-11-14T22:13:20Z for 30 days.
	requester []byte
}

func trustVectors(t testing.TB) trustVector {
	owner := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x4f}, 32))
	server := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x53}, 32))
	writer := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x42}, 32))
	created := time.Unix(1_700_000_000, 0).UTC()
	var nonce [16]byte
	for i := range nonce {
		nonce[i] = byte(i + 1)
	}
	v := trustVector{
		meta: &certs.Metadata{Kind: certs.KindCapsule, Key: owner.Public().(ed25519.PublicKey), WriterKey: writer.Public().(ed25519.PublicKey),
			Created: created, Nonce: nonce, Description: "trust vectors"},
		server: &certs.Metadata{Kind: certs.KindServer, Key: server.Public().(ed25519.PublicKey), Created: created, Nonce: nonce, Description: "vector server"},
	}
	v.capsule = v.meta.Name()
	hb := &capsule.Heartbeat{Capsule: v.capsule, Seqno: 1, Root: sha256.Sum256([]byte("root")), Time: 1_700_000_000_000_000_000}
	hb.Sign(writer)
	v.receipt = capsule.NewReceipt(hb, v.server.Name(), server)
	var err error
	if v.placement, err = capsule.SignPlacement(owner, v.meta, []pdu.Name{v.server.Name(), {0xbb}, {0xcc}}, 2, created); err != nil {
		t.Fatal(err)
	}
	if v.adcert, err = certs.IssueAdCert(owner, v.capsule, v.server.Name(), created, created.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	cli := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x43}, 32))
	dom := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x44}, 32))
	cliMeta := &certs.Metadata{Kind: certs.KindClient, Key: cli.Public().(ed25519.PublicKey), Created: created, Nonce: nonce, Description: "vector client"}
	domMeta := &certs.Metadata{Kind: certs.KindDomain, Key: dom.Public().(ed25519.PublicKey), Created: created, Nonce: nonce, Description: "vector domain"}
	domID, err := certs.NewIdentityFor(domMeta, dom)
	if err != nil {
		t.Fatal(err)
	}
	member, err := certs.IssueMember(domID, cliMeta.Name(), created, created.Add(30*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if v.requester, err = (&Requester{Credentials: tunnel.EncodeCredentials(cliMeta, member, domMeta)}).Marshal(); err != nil {
		t.Fatal(err)
	}
	return v
}

// readVectors parses testdata/vectors.txt: "name hex" lines.
func readVectors(t testing.TB) map[string][]byte {
	b, err := os.ReadFile(filepath.Join("testdata", "vectors.txt"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, hx, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("bad vector line %q", line)
		}
		v, err := hex.DecodeString(hx)
		if err != nil {
			t.Fatalf("vector %s: %v", name, err)
		}
		out[name] = v
	}
	return out
}

// TestVectors: every documented message encodes to its vector, and the
// vector decodes back to the message.
func TestVectors(t *testing.T) {
	msgs := vectorMessages(t)
	if *update {
		var names []string
		for n := range msgs {
			names = append(names, n)
		}
		sort.Strings(names)
		var sb strings.Builder
		sb.WriteString("# capsule command vectors (docs/PROTOCOL.md §8.5): name, then the message in hex\n")
		for _, n := range names {
			b, err := msgs[n].Marshal()
			if err != nil {
				t.Fatal(err)
			}
			sb.WriteString(n + " " + hex.EncodeToString(b) + "\n")
		}
		if err := os.WriteFile(filepath.Join("testdata", "vectors.txt"), []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	vecs := readVectors(t)
	if len(vecs) != len(msgs) {
		t.Fatalf("%d vectors, %d messages", len(vecs), len(msgs))
	}
	for name, m := range msgs {
		t.Run(name, func(t *testing.T) {
			b, err := m.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, vecs[name]) {
				t.Fatalf("encoding differs from the vector:\n got %x\nwant %x", b, vecs[name])
			}
			back, err := Unmarshal(vecs[name])
			if err != nil {
				t.Fatal(err)
			}
			// The decoded fields, not a re-encoding: a decoder that drops
			// or misplaces a field would re-encode consistently wrong.
			if !reflect.DeepEqual(back, m) {
				t.Fatalf("the vector decodes to\n%+v\nwant\n%+v", back, m)
			}
		})
	}
}

// TestDocQuotesVectors: docs/PROTOCOL.md §8 quotes every vector verbatim.
func TestDocQuotesVectors(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "PROTOCOL.md"))
	if err != nil {
		t.Skip("docs/PROTOCOL.md not found")
	}
	sec := string(doc)
	i := strings.Index(sec, "## 8. Capsule commands")
	if i < 0 {
		t.Fatal("docs/PROTOCOL.md has no §8")
	}
	sec = strings.ReplaceAll(sec[i:], "\n", "")
	for name, v := range readVectors(t) {
		if !strings.Contains(sec, hex.EncodeToString(v)) {
			t.Errorf("§8 does not quote vector %q", name)
		}
	}
}

// TestVectorsIndependentDecoder runs testdata/check_vectors.py, a decoder
// written in Python (standard library only) from docs/PROTOCOL.md §7–8,
// over testdata/vectors.txt: the golden bytes are written by this package
// (-update), so without it an encoder bug would be frozen into them and
// the test above would agree with itself. It reads the field, operation
// and status tables from the document and compares every decoded field
// with the messages §8.6 describes.
func TestVectorsIndependentDecoder(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3: the independent check of the vectors did not run")
	}
	out, err := exec.Command(py, filepath.Join("testdata", "check_vectors.py")).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}
