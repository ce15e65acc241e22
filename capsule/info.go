package capsule

import (
	"crypto/ed25519"
	"fmt"

	"github.com/gdpnet/gdpnet/pdu"
)

// Info is what a verifier needs to know about a capsule: its name and the
// writer key that signs its heartbeats.
type Info struct {
	Name   pdu.Name
	Writer ed25519.PublicKey
}

// Check reports whether the info is usable.
func (i Info) Check() error {
	if i.Name.IsZero() {
		return fmt.Errorf("capsule info: %w: zero name", ErrMalformed)
	}
	if len(i.Writer) != ed25519.PublicKeySize {
		return fmt.Errorf("capsule info: %w: writer key of %d bytes", ErrMalformed, len(i.Writer))
	}
	return nil
}
