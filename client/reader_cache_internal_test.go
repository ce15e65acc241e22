package client

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestPageUnderHeldHeartbeat: once a page's heartbeat is verified and
// held, later pages carrying the same heartbeat bytes skip its signature
// check (no ed25519 verification for them, counted), but their entries are still checked against it: a record altered
// under the held heartbeat, or another heartbeat's bytes, is refused.
func TestPageUnderHeldHeartbeat(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	var c pdu.Name
	_, _ = rand.Read(c[:])
	w := capsule.NewWriter(c, key)
	var tree capsule.MemTree
	for i := range 4 {
		w.Append([]byte{byte(i), 1, 2, 3})
	}
	recs, hb := w.Flush()
	for _, e := range recs {
		tree.Append(e.Hash())
	}
	page := func(i int) *wire.Message {
		path, err := capsule.InclusionPath(&tree, uint64(i), hb.Seqno)
		if err != nil {
			t.Fatal(err)
		}
		p := &capsule.InclusionProof{Index: uint64(i), Size: hb.Seqno, Path: path}
		return &wire.Message{Op: wire.OpRead, Capsule: c[:], Heartbeat: hb.Marshal(), Records: [][]byte{recs[i].Marshal()}, Proof: p.Marshal()}
	}
	r := &Reader{info: capsule.Info{Name: c, Writer: pub}}
	r.f = capsule.NewFollower(r.info)
	var sigs uint64
	for i := range 4 {
		if i == 1 {
			sigs = capsule.HeartbeatSigChecks() // the first page took the heartbeat
		}
		if _, err := r.verifyPage(page(i)); err != nil {
			t.Fatalf("page %d: %v", i, err)
		}
	}
	// The pages under the held heartbeat cost no signature check.
	if n := capsule.HeartbeatSigChecks() - sigs; n != 0 {
		t.Fatalf("%d heartbeat signature checks for 3 pages under the held heartbeat, want 0", n)
	}
	if r.hbOf == nil || r.hbOf != r.f.Heartbeat() {
		t.Fatal("the verified heartbeat was not kept for the next page")
	}
	bad := page(2)
	bad.Records[0][len(bad.Records[0])-1] ^= 1
	if _, err := r.verifyPage(bad); !errors.Is(err, capsule.ErrBadDataHash) {
		t.Fatalf("altered record under the held heartbeat: %v", err)
	}
	forged := page(3)
	forged.Heartbeat[len(forged.Heartbeat)-1] ^= 1 // the signature's last byte
	if _, err := r.verifyPage(forged); err == nil {
		t.Fatal("a heartbeat with a broken signature was taken")
	}
	if _, err := r.verifyPage(page(3)); err != nil {
		t.Fatalf("page 3: %v", err)
	}
}
