package certs

import (
	"errors"
	"fmt"
)

// Sentinel errors. A chain rejection is a *ChainError whose Err is exactly
// one of the first nine; errors.Is works through the *ChainError.
var (
	ErrBadSignature    = errors.New("bad signature")
	ErrExpired         = errors.New("expired")
	ErrNotYetValid     = errors.New("not yet valid")
	ErrWrongSubject    = errors.New("wrong subject")
	ErrWrongIssuer     = errors.New("wrong issuer")
	ErrNameMismatch    = errors.New("name does not match metadata")
	ErrUntrustedDomain = errors.New("untrusted domain")
	ErrMalformed       = errors.New("malformed")
	ErrWrongKind       = errors.New("wrong kind")

	// ErrKeyPermissions: a key file is readable by group or others.
	ErrKeyPermissions = errors.New("key file readable by group or others")
	// ErrNotFound: no such alias in the keystore.
	ErrNotFound = errors.New("not found")
	// ErrExists: the alias is already taken; keys are never overwritten.
	ErrExists = errors.New("already exists")
)

// Chain links, as named in a *ChainError.
const (
	LinkChain    = "chain"    // the chain as a whole (nil, missing parts)
	LinkTarget   = "target"   // metadata of the advertised name
	LinkAdCert   = "adcert"   // owner(target) -> endpoint
	LinkEndpoint = "endpoint" // metadata of the endpoint (server) S
	LinkRtCert   = "rtcert"   // endpoint -> router
	LinkRouter   = "router"   // metadata of router R
	LinkMember   = "member"   // domain -> router membership cert
	LinkDomain   = "domain"   // metadata of the trust domain D
	LinkNode     = "node"     // VerifyMember: metadata of the would-be member
)

// ChainError says which link of a chain failed and why.
type ChainError struct {
	Link   string // one of the Link* constants
	Err    error  // one of the sentinel errors above, never wrapped
	Detail string // human detail: names, times
}

func (e *ChainError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("chain link %s: %v", e.Link, e.Err)
	}
	return fmt.Sprintf("chain link %s: %v: %s", e.Link, e.Err, e.Detail)
}

// Unwrap lets errors.Is(err, ErrExpired) see through the link.
func (e *ChainError) Unwrap() error { return e.Err }

func linkErr(link string, err error, format string, a ...any) *ChainError {
	return &ChainError{Link: link, Err: err, Detail: fmt.Sprintf(format, a...)}
}

// malformed wraps ErrMalformed with what was being parsed and why.
func malformed(what string, format string, a ...any) error {
	return fmt.Errorf("parse %s: %w: %s", what, ErrMalformed, fmt.Sprintf(format, a...))
}
