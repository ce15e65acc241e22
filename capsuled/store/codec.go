package store

import "github.com/fxamacker/cbor/v2"

// Capsule metadata is written deterministically (detcbor.Marshal) but read
// leniently: the store reads only what it wrote itself, and a lenient reader
// lets an older binary open a database a newer one added fields to.
var cborDec, _ = cbor.DecOptions{DupMapKey: cbor.DupMapKeyEnforcedAPF}.DecMode()
