package pdu

import (
	"encoding/base64"
	"errors"
	"fmt"
)

// NameStringLen is the length of a name's printable form: 43 characters of
// unpadded base64url, as in the original GDP.
const NameStringLen = 43

// ErrName is wrapped by every ParseName error.
var ErrName = errors.New("bad name")

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

// ParseName parses the 43-character printable form. It accepts exactly the
// strings String produces: unpadded base64url, no whitespace, and zero in the
// two bits the last character carries beyond the 256.
func ParseName(s string) (Name, error) {
	var n Name
	if len(s) != NameStringLen {
		return Name{}, fmt.Errorf("name %s: %w: want %d base64url characters, have %d", quoteShort(s), ErrName, NameStringLen, len(s))
	}
	// Strict rejects non-zero trailing bits; the count check rejects the
	// '\r' and '\n' that the decoder would otherwise skip.
	k, err := base64.RawURLEncoding.Strict().Decode(n[:], []byte(s))
	if err != nil || k != NameLen {
		return Name{}, fmt.Errorf("name %s: %w: not canonical unpadded base64url", quoteShort(s), ErrName)
	}
	return n, nil
}

// quoteShort quotes s for an error message, cut so that a hostile input
// cannot make the message large.
func quoteShort(s string) string {
	const max = 2 * NameStringLen
	if len(s) > max {
		return fmt.Sprintf("%q…", s[:max])
	}
	return fmt.Sprintf("%q", s)
}
