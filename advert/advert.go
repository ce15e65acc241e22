package advert

import (
	"errors"
	"fmt"
	"time"

	"github.com/gdpnet/gdpnet/internal/detcbor"
	"github.com/gdpnet/gdpnet/pdu"
)

// Control payloads of ADVERTISE, WITHDRAW and ADVERTISE_RESULT
// (docs/PROTOCOL.md §5): deterministic CBOR maps with small integer keys.
//
// An ADVERTISE carries the endpoint's half of each route chain — what only
// the endpoint can supply (its metadata, its RtCert for this router, and for
// each hosted capsule the capsule's metadata and AdCert). The router
// completes every chain with its own metadata, membership and domain, which
// it holds already, and verifies the whole chain.

// Limits enforced by the decoder.
const (
	MaxAdvertNames = 128   // names in one ADVERTISE or WITHDRAW (its result then fits one PDU)
	maxPiece       = 4096  // bytes of one metadata or certificate
	MaxDetail      = 256   // bytes of a refusal's detail text (a router clips to it)
	maxControl     = 65535 // a control payload is one PDU payload
)

// Advertise is the payload of an ADVERTISE PDU.
type Advertise struct {
	// Seq orders one endpoint's advertisements and withdrawals at a router:
	// each must be higher than the last one the router accepted from that
	// endpoint, and is the sender's clock in Unix nanoseconds (bumped to
	// stay increasing) so a router that restarted still refuses old ones.
	Seq uint64 `cbor:"1,keyasint"`
	// Endpoint is the canonical metadata of the advertising endpoint S.
	Endpoint []byte `cbor:"2,keyasint"`
	// RtCert is S's routing-location certificate naming this router.
	RtCert []byte `cbor:"3,keyasint"`
	// Names are the advertised names.
	Names []AdvertName `cbor:"4,keyasint"`
	// Wait (milliseconds, optional) asks the router to hold its answer
	// until the location record of every accepted name is stored in the
	// resolver, or this long has passed (the router caps it at its
	// advertise.max_publish_wait); each accepted name's Published then
	// says which. 0: answer at once, as before (PROTOCOL.md §5.2).
	Wait uint32 `cbor:"5,keyasint,omitempty"`
}

// MaxWait is the longest Wait an endpoint may ask for (the router's own
// cap is usually lower).
const MaxWait = 120_000

// AdvertName is one advertised name. Target and AdCert are both absent when
// the name is the endpoint's own, both present for a capsule the endpoint
// hosts.
type AdvertName struct {
	Name   pdu.Name `cbor:"1,keyasint"`
	Target []byte   `cbor:"2,keyasint,omitempty"`
	AdCert []byte   `cbor:"3,keyasint,omitempty"`
}

// Withdraw is the payload of a WITHDRAW PDU.
type Withdraw struct {
	Seq   uint64     `cbor:"1,keyasint"`
	Names []pdu.Name `cbor:"2,keyasint"`
}

// Status is the per-name outcome in an ADVERTISE_RESULT.
type Status uint8

// Statuses. Every refusal is also a value of the "result" label of
// gdp_router_advertisements_total.
const (
	StatusOK           Status = 0  // installed (ADVERTISE) or removed (WITHDRAW)
	StatusMalformed    Status = 1  // a piece does not parse
	StatusBadSignature Status = 2  // a signature in the chain does not verify
	StatusExpired      Status = 3  // a certificate in the chain has expired
	StatusNotYetValid  Status = 4  // a certificate in the chain is not valid yet
	StatusWrongIssuer  Status = 5  // a certificate names the wrong issuer
	StatusWrongSubject Status = 6  // a certificate names another subject (e.g. RtCert for another router)
	StatusNameMismatch Status = 7  // metadata does not hash to the advertised name
	StatusUntrusted    Status = 8  // the router's domain is not trusted (router misconfigured)
	StatusWrongKind    Status = 9  // a piece of the wrong kind
	StatusReplay       Status = 10 // Seq not above the last accepted, or outside the clock window
	StatusNotEndpoint  Status = 11 // the chain's endpoint is not the node on this tunnel
	StatusFIBFull      Status = 12 // the FIB is at its size bound
	StatusTooMany      Status = 13 // the face holds its maximum number of names
	StatusNotFound     Status = 14 // WITHDRAW of a name the endpoint does not hold here
	StatusInternal     Status = 15 // the router failed; try again
	StatusRateLimited  Status = 16 // the endpoint is over its verification budget; retry later
	// StatusIdentityQuota: the endpoint's identity holds its maximum number
	// of names at this router, counted across all its tunnels.
	StatusIdentityQuota Status = 17
	maxStatus                  = StatusIdentityQuota
)

var statusNames = [...]string{
	"accepted", "malformed", "bad_signature", "expired", "not_yet_valid", "wrong_issuer",
	"wrong_subject", "name_mismatch", "untrusted_domain", "wrong_kind", "replay",
	"not_endpoint", "fib_full", "too_many", "not_found", "internal", "rate_limited",
	"identity_quota",
}

func (s Status) String() string {
	if s <= maxStatus {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Result is the payload of an ADVERTISE_RESULT PDU, answering the ADVERTISE
// or WITHDRAW with the same PDU sequence number.
type Result struct {
	Seq   uint64       `cbor:"1,keyasint"`
	Names []NameResult `cbor:"2,keyasint"`
}

// NameResult is the outcome for one name.
type NameResult struct {
	Name   pdu.Name `cbor:"1,keyasint"`
	Status Status   `cbor:"2,keyasint"`
	// Expiry (Unix seconds) is when an accepted route expires unless
	// renewed; 0 otherwise.
	Expiry int64 `cbor:"3,keyasint,omitempty"`
	// Detail says which link of the chain failed and why (refusals only).
	Detail string `cbor:"4,keyasint,omitempty"`
	// Published answers an ADVERTISE with a Wait, for accepted names:
	// whether the name's location record is in the resolver (resolvable
	// from other routers). Absent (PublishNotAsked) otherwise.
	Published Publish `cbor:"5,keyasint,omitempty"`
}

// Publish is an accepted name's location-record state in a result to an
// ADVERTISE that asked to wait for it.
type Publish uint8

// Publish states (PROTOCOL.md §5.4).
const (
	PublishNotAsked   Publish = 0 // no Wait asked, or the name was refused
	PublishDone       Publish = 1 // the resolver stored the name's location record
	PublishPending    Publish = 2 // not confirmed within the wait: other routers may not resolve the name yet
	PublishNoResolver Publish = 3 // the router has no resolver: the name is reachable only through this router's routing
	maxPublish                = PublishNoResolver
)

var publishNames = [...]string{"not_asked", "published", "pending", "no_resolver"}

func (p Publish) String() string {
	if p <= maxPublish {
		return publishNames[p]
	}
	return fmt.Sprintf("publish(%d)", uint8(p))
}

// ExpiryTime returns Expiry as a time (zero when unset).
func (n NameResult) ExpiryTime() time.Time {
	if n.Expiry == 0 {
		return time.Time{}
	}
	return time.Unix(n.Expiry, 0)
}

// ErrMalformedControl wraps every decoding failure of a control payload.
var ErrMalformedControl = errors.New("advert: malformed control payload")

// codec encodes control payloads deterministically and decodes them
// strictly.
var codec = detcbor.Must(detcbor.Limits{
	MaxArrayElements: MaxAdvertNames,
	MaxMapPairs:      16,
	MaxNestedLevels:  4,
})

// decodeStrict decodes b into v and insists that b was the deterministic
// encoding of v, so one message has exactly one encoding.
func decodeStrict(b []byte, v any) error {
	if len(b) > maxControl {
		return fmt.Errorf("%w: %d bytes", ErrMalformedControl, len(b))
	}
	if err := codec.UnmarshalStrict(b, v); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformedControl, err)
	}
	return nil
}

// MarshalAdvertise encodes a.
func MarshalAdvertise(a *Advertise) ([]byte, error) { return codec.Marshal(a) }

// ParseAdvertise decodes and checks an ADVERTISE payload.
func ParseAdvertise(b []byte) (*Advertise, error) {
	var a Advertise
	if err := decodeStrict(b, &a); err != nil {
		return nil, err
	}
	if len(a.Endpoint) == 0 || len(a.Endpoint) > maxPiece || len(a.RtCert) == 0 || len(a.RtCert) > maxPiece {
		return nil, fmt.Errorf("%w: endpoint or rtcert missing or too large", ErrMalformedControl)
	}
	if len(a.Names) == 0 {
		return nil, fmt.Errorf("%w: no names", ErrMalformedControl)
	}
	if a.Wait > MaxWait {
		return nil, fmt.Errorf("%w: wait %d ms over %d", ErrMalformedControl, a.Wait, MaxWait)
	}
	for i, n := range a.Names {
		if (n.Target == nil) != (n.AdCert == nil) {
			return nil, fmt.Errorf("%w: name %d: target and adcert must come together", ErrMalformedControl, i)
		}
		if len(n.Target) > maxPiece || len(n.AdCert) > maxPiece {
			return nil, fmt.Errorf("%w: name %d: piece too large", ErrMalformedControl, i)
		}
	}
	return &a, nil
}

// MarshalWithdraw encodes w.
func MarshalWithdraw(w *Withdraw) ([]byte, error) { return codec.Marshal(w) }

// ParseWithdraw decodes and checks a WITHDRAW payload.
func ParseWithdraw(b []byte) (*Withdraw, error) {
	var w Withdraw
	if err := decodeStrict(b, &w); err != nil {
		return nil, err
	}
	if len(w.Names) == 0 {
		return nil, fmt.Errorf("%w: no names", ErrMalformedControl)
	}
	return &w, nil
}

// MarshalResult encodes r.
func MarshalResult(r *Result) ([]byte, error) { return codec.Marshal(r) }

// ParseResult decodes and checks an ADVERTISE_RESULT payload.
func ParseResult(b []byte) (*Result, error) {
	var r Result
	if err := decodeStrict(b, &r); err != nil {
		return nil, err
	}
	for _, n := range r.Names {
		if n.Status > maxStatus || len(n.Detail) > MaxDetail || n.Published > maxPublish {
			return nil, fmt.Errorf("%w: bad status or detail", ErrMalformedControl)
		}
	}
	return &r, nil
}
