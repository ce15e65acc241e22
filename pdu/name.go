package pdu

import (
	"encoding/base64"
	"fmt"
)

// NameStringLen is the length of a name's printable form: 43 characters of
// unpadded base64url, as in the original GDP.
const NameStringLen = 43

// String returns the 43-character unpadded base64url form.
func (n Name) String() string { return base64.RawURLEncoding.EncodeToString(n[:]) }

// IsZero reports whether n is all zeros (no name).
func (n Name) IsZero() bool { return n == Name{} }

// MarshalText implements encoding.TextMarshaler (YAML, JSON).
func (n Name) MarshalText() ([]byte, error) { return []byte(n.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (n *Name) UnmarshalText(b []byte) error {
	p, err := ParseName(string(b))
	if err != nil {
		return err
	}
	*n = p
	return nil
}

// ParseName parses the 43-character printable form.
func ParseName(s string) (Name, error) {
	var n Name
	if len(s) != NameStringLen {
		return n, fmt.Errorf("name %q: want %d base64url characters, have %d", s, NameStringLen, len(s))
	}
	k, err := base64.RawURLEncoding.Strict().Decode(n[:], []byte(s))
	if err != nil || k != NameLen {
		return Name{}, fmt.Errorf("name %q: not unpadded base64url", s)
	}
	return n, nil
}
