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

const (
	majorUint  = 0 << 5
	majorBytes = 2 << 5
	majorText  = 3 << 5
	majorArray = 4 << 5
	majorMap   = 5 << 5
	tagSign1   = 0xd2 // tag 18, COSE_Sign1
)

// appendHead appends a CBOR initial byte and argument in the shortest form
// (RFC 8949 §4.2.1 "preferred serialization").
func appendHead(b []byte, major byte, n uint64) []byte {
	switch {
	case n < 24:
		return append(b, major|byte(n))
	case n <= 0xff:
		return append(b, major|24, byte(n))
	case n <= 0xffff:
		return append(b, major|25, byte(n>>8), byte(n))
	case n <= 0xffffffff:
		return append(b, major|26, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, major|27, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32),
		byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

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
