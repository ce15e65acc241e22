package capsule_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/pdu"
)

// A writer appends records and signs one heartbeat over them; a server
// checks the batch against its head; a reader verifies a range with one
// signature check and one inclusion proof.
func Example() {
	pub, key, _ := ed25519.GenerateKey(nil)
	name := pdu.Name(sha256.Sum256([]byte("example capsule"))) // really: the metadata's hash
	info := capsule.Info{Name: name, Writer: pub}

	w := capsule.NewWriter(name, key)
	w.Append([]byte("first"))
	w.Hole() // seqno 2 will never be filled
	w.Append([]byte("third"))
	recs, hb := w.Flush()

	// Server side: verify, then extend the stored head.
	batch, err := capsule.CheckBatch(info, recs, hb, 0)
	if err != nil {
		panic(err)
	}
	var head capsule.Head
	var nodes capsule.MemTree // a store keeps these on disk
	applied, err := head.Apply(batch, nil)
	if err != nil {
		panic(err)
	}
	for _, h := range applied.Hashes {
		nodes.Append(h)
	}

	// Reader side: entries 1..3 (the hole included), proven against hb.
	path, _ := capsule.InclusionPath(&nodes, 2, hb.Seqno)
	proof := &capsule.InclusionProof{Index: 2, Size: hb.Seqno, Path: path}
	err = capsule.VerifyRange(info, hb, applied.Entries, proof, 0)
	fmt.Println(len(applied.Entries), applied.Entries[1].Hole, err)
	// Output: 3 true <nil>
}
