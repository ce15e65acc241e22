package certs

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"os"
)

// File armor. Metadata, certificates, chains and keys are stored as PEM
// blocks (RFC 7468 textual encoding) around their binary encodings, so they
// survive e-mail and copy-paste and say what they are. Readers also accept
// the raw binary encoding.
const (
	PEMMetadata   = "GDP METADATA"
	PEMCert       = "GDP CERT"
	PEMChain      = "GDP CHAIN"
	PEMPrivateKey = "GDP PRIVATE KEY" // the 32-byte Ed25519 seed
)

// Armor wraps b in a PEM block of the given type.
func Armor(typ string, b []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b})
}

// Dearmor returns the PEM block's type and bytes, or ("", data) when data is
// not PEM (raw binary). Trailing data after one block is refused.
func Dearmor(data []byte) (typ string, body []byte, err error) {
	trimmed := bytes.TrimSpace(data)
	if !bytes.HasPrefix(trimmed, []byte("-----BEGIN ")) {
		return "", data, nil
	}
	blk, rest := pem.Decode(trimmed)
	if blk == nil {
		return "", nil, fmt.Errorf("%w: broken PEM armor", ErrMalformed)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return "", nil, fmt.Errorf("%w: data after the %s block", ErrMalformed, blk.Type)
	}
	return blk.Type, blk.Bytes, nil
}

func readArmored(path, want string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	typ, body, err := Dearmor(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if typ != "" && typ != want {
		return nil, fmt.Errorf("%s: %w: holds a %q block, want %q", path, ErrMalformed, typ, want)
	}
	return body, nil
}

// ReadMetadataFile reads metadata from a PEM or binary file.
func ReadMetadataFile(path string) (*Metadata, error) {
	b, err := readArmored(path, PEMMetadata)
	if err != nil {
		return nil, err
	}
	m, err := ParseMetadata(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// ReadCertFile reads a certificate from a PEM or binary file.
func ReadCertFile(path string) (*Cert, error) {
	b, err := readArmored(path, PEMCert)
	if err != nil {
		return nil, err
	}
	c, err := ParseCert(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ReadChainFile reads a chain from a PEM or binary file.
func ReadChainFile(path string) (*Chain, error) {
	b, err := readArmored(path, PEMChain)
	if err != nil {
		return nil, err
	}
	c, err := ParseChain(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
