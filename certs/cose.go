package certs

// COSE_Sign1 details (RFC 9052 §4.2, §4.4).

// protectedEdDSA is the serialized protected header {1: -8}: alg = EdDSA.
var protectedEdDSA = []byte{0xa1, 0x01, 0x27}

// certAAD is the external AAD per certificate kind. Binding the kind into
// the signature input separates the domains: an AdCert signature can never
// pass as an RtCert or membership signature, nor as a signature over any
// other gdpnet object made with the same key.
var certAAD = [...][]byte{
	KindAdCert: []byte("gdpnet v1 adcert"),
	KindRtCert: []byte("gdpnet v1 rtcert"),
	KindMember: []byte("gdpnet v1 member"),
}

// sigStructure returns the bytes an Ed25519 signature covers:
// ["Signature1", protected, external_aad, payload] in deterministic CBOR.
func sigStructure(kind CertKind, payload []byte) []byte {
	var aad []byte
	if kind.Valid() {
		aad = certAAD[kind]
	}
	b := make([]byte, 0, 20+len(aad)+len(payload)+4)
	b = appendHead(b, majorArray, 4)
	b = appendText(b, "Signature1")
	b = appendBytes(b, protectedEdDSA)
	b = appendBytes(b, aad)
	b = appendBytes(b, payload)
	return b
}
