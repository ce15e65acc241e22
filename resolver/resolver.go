package resolver

import (
	"context"
	"errors"

	"github.com/gdpnet/gdpnet/pdu"
)

// Resolver publishes, looks up and withdraws location records.
//
// Implementations verify every record they accept or return: a record that
// Lookup returns has a valid signature and chain and has not expired.
type Resolver interface {
	// Publish stores rec (already signed, see Record.Sign) so that Lookup of
	// rec.Name finds it. A name holds one record per router (rec.Router()):
	// rec replaces that router's record and leaves the other routers'. A
	// record older (lower Sequence) than the one already held for the
	// same name and router is refused with ErrStale.
	Publish(ctx context.Context, rec *Record) error
	// Lookup returns the newest valid record for name, or an error wrapping
	// ErrNotFound when there is none (never published, withdrawn, expired).
	Lookup(ctx context.Context, name pdu.Name) (*Record, error)
	// LookupAll returns every current location of name: one valid,
	// unexpired, not withdrawn record per router holding it (several
	// servers attached to different routers may advertise one capsule),
	// newest first, so LookupAll(...)[0] is what Lookup returns. It fails
	// like Lookup when there is none.
	LookupAll(ctx context.Context, name pdu.Name) ([]*Record, error)
	// Withdraw stops announcing name. Implementations that can sign (the
	// node's key is the router's) replace the record with a signed
	// tombstone; others stop republishing and let the record expire.
	Withdraw(ctx context.Context, name pdu.Name) error
	// WithdrawIf withdraws router's record for name and only that one:
	// the records of other routers holding the name (replicas, or the
	// router the name moved to) stay. Routers withdraw their routes with
	// it, never with Withdraw. A node that announces name for another
	// router than router gets an error wrapping ErrSuperseded.
	WithdrawIf(ctx context.Context, name, router pdu.Name) error
	// Close stops background work (republishing, DHT, sockets).
	Close() error
}

// Errors callers branch on. Verification failures wrap one of these and,
// for a bad chain, also the certs error (errors.Is works on both).
var (
	ErrNotFound     = errors.New("resolver: name not found")
	ErrStale        = errors.New("resolver: older sequence than the record held")
	ErrExpired      = errors.New("resolver: record expired")
	ErrBadSignature = errors.New("resolver: bad record signature")
	ErrBadChain     = errors.New("resolver: certificate chain does not verify")
	ErrNotMember    = errors.New("resolver: router is not a member of the domain")
	ErrWrongKey     = errors.New("resolver: record stored under another name's key")
	ErrWrongKind    = errors.New("resolver: record kind not accepted here")
	ErrMalformed    = errors.New("resolver: malformed record")
	ErrTooLarge     = errors.New("resolver: record too large")
	ErrNotPublished = errors.New("resolver: name was not published by this node")
	ErrSuperseded   = errors.New("resolver: name now points at another router")
	ErrFewPeers     = errors.New("resolver: put reached too few peers")
	ErrClosed       = errors.New("resolver: closed")
)
