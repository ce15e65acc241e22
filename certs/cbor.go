package certs

import (
	"reflect"

	"github.com/fxamacker/cbor/v2"

	"github.com/gdpnet/gdpnet/internal/detcbor"
)

// The hot paths (hashing metadata, building the COSE signature input) use
// the small hand-written appenders below; fxamacker/cbor decodes, strictly,
// and the tests check that both agree byte for byte with fxamacker's core
// deterministic encoder (RFC 8949 §4.2.1).

// Major types (RFC 8949 §3.1), as detcbor.AppendHead takes them.
const (
	majorUint  = 0
	majorBytes = 2
	majorText  = 3
	majorArray = 4
	majorMap   = 5
	tagSign1   = 0xd2 // tag 18, COSE_Sign1
)

// appendHead appends a CBOR initial byte and argument in the shortest form
// (RFC 8949 §4.2.1 "preferred serialization").
func appendHead(b []byte, major byte, n uint64) []byte { return detcbor.AppendHead(b, major, n) }

func appendBytes(b []byte, v []byte) []byte {
	return append(appendHead(b, majorBytes, uint64(len(v))), v...)
}

func appendText(b []byte, s string) []byte {
	return append(appendHead(b, majorText, uint64(len(s))), s...)
}

// decMode decodes our objects with the shared strict options (no duplicate
// keys, no unknown keys, no indefinite lengths, no tags, valid UTF-8 only)
// and small limits. Strictness beyond this (shortest integer forms, key
// order) comes from re-encoding with the appenders above and comparing
// bytes.
var decMode = func() cbor.DecMode {
	opts := detcbor.DecOptions(detcbor.Limits{
		MaxArrayElements: 16,
		MaxMapPairs:      64,
		MaxNestedLevels:  4,
	})
	opts.DefaultMapType = reflect.TypeOf(map[string]string(nil))
	m, err := opts.DecMode()
	if err != nil {
		panic(err) // static options: a programming error
	}
	return m
}()
