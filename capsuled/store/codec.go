package store

import "github.com/fxamacker/cbor/v2"

var (
	cborEnc, _ = cbor.CoreDetEncOptions().EncMode()
	cborDec, _ = cbor.DecOptions{DupMapKey: cbor.DupMapKeyEnforcedAPF}.DecMode()
)
