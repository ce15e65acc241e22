package resolver

import (
	"crypto/ed25519"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	wallclock "github.com/gdpnet/gdpnet/internal/clock"
	"github.com/gdpnet/gdpnet/pdu"
)

// Kind says which tier a record belongs to.
type Kind uint8

const (
	// KindLocation is a domain-tier record: Name is reachable at the chain's
	// router, a member of the chain's domain, at Addrs. Signed by that router.
	KindLocation Kind = 1
	// KindBorder is a global-tier record: Name is in the chain's domain and
	// is reached through border router Border (a member of the same domain)
	// at Addrs. Signed by the border router.
	KindBorder Kind = 2
)

func (k Kind) String() string {
	switch k {
	case KindLocation:
		return "location"
	case KindBorder:
		return "border"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Limits of a record; ParseRecord and Marshal enforce them.
const (
	MaxRecordSize = 8192 // bytes of the whole encoded record
	MaxAddrs      = 8    // underlay addresses per record
	MaxAddrLen    = 64   // bytes per address string
)

// Record is a signed location record. Build one with NewLocation or
// NewBorder, or parse one with ParseRecord; a Record is immutable once signed.
type Record struct {
	Kind Kind
	// Name is the advertised name N (a capsule, or an endpoint's own name).
	Name pdu.Name
	// Addrs are underlay addresses ("ip:port", IPv4 or IPv6) of the router
	// to contact: the chain's router for KindLocation, Border for KindBorder.
	Addrs []string
	// Chain proves "Name is reachable at Chain.Router, a member of
	// Chain.Domain".
	Chain *certs.Chain
	// Border and BorderMember (KindBorder only) are the border router's
	// metadata and its membership certificate in Chain.Domain.
	Border       *certs.Metadata
	BorderMember *certs.Cert
	// Sequence orders records for one name: higher wins. Routers use
	// NextSequence so that a re-advertisement always beats the last one.
	Sequence uint64
	// Expiry (second precision) is when the record stops being valid. The
	// record is valid until the earlier of Expiry and its chain's expiry.
	Expiry time.Time
	// Withdrawn marks a tombstone: the signer no longer announces Name.
	Withdrawn bool
	// Signature is the signer's Ed25519 signature (see signedBytes).
	Signature []byte

	raw []byte // the exact encoding, set by Sign and ParseRecord
}

// Router is the name of the router the chain points at.
func (r *Record) Router() pdu.Name {
	if r.Chain == nil || r.Chain.Router == nil {
		return pdu.Name{}
	}
	return r.Chain.Router.Name()
}

// Domain is the trust domain the chain's router belongs to.
func (r *Record) Domain() pdu.Name {
	if r.Chain == nil || r.Chain.Domain == nil {
		return pdu.Name{}
	}
	return r.Chain.Domain.Name()
}

// Signer is the metadata whose key signs the record: the router for a
// location record, the border router for a border record.
func (r *Record) Signer() *certs.Metadata {
	if r.Kind == KindBorder {
		return r.Border
	}
	if r.Chain == nil {
		return nil
	}
	return r.Chain.Router
}

// Bytes returns the signed encoding (nil before Sign).
func (r *Record) Bytes() []byte { return r.raw }

// ChainExpiry is the earliest NotAfter among the record's certificates.
func (r *Record) ChainExpiry() time.Time {
	var t time.Time
	consider := func(c *certs.Cert) {
		if c != nil && (t.IsZero() || c.NotAfter.Before(t)) {
			t = c.NotAfter
		}
	}
	if r.Chain != nil {
		consider(r.Chain.AdCert)
		consider(r.Chain.RtCert)
		consider(r.Chain.Member)
	}
	consider(r.BorderMember)
	return t
}

// EffectiveExpiry is the earlier of Expiry and ChainExpiry.
func (r *Record) EffectiveExpiry() time.Time {
	ce := r.ChainExpiry()
	if !ce.IsZero() && ce.Before(r.Expiry) {
		return ce
	}
	return r.Expiry
}

// NewLocation builds and signs a domain-tier record for name, reached at the
// router holding key routerKey. expiry zero means "when the chain expires".
func NewLocation(routerKey ed25519.PrivateKey, name pdu.Name, chain *certs.Chain, addrs []string, seq uint64, expiry time.Time) (*Record, error) {
	r := &Record{Kind: KindLocation, Name: name, Addrs: addrs, Chain: chain, Sequence: seq}
	r.Expiry = expiry
	if expiry.IsZero() {
		r.Expiry = r.ChainExpiry()
	}
	if err := r.Sign(routerKey); err != nil {
		return nil, err
	}
	return r, nil
}

// NewBorder builds and signs a global-tier record: name (proved by chain to
// be in chain's domain) is reached through the border router whose metadata
// is border, holding membership member in that domain, at addrs.
func NewBorder(borderKey ed25519.PrivateKey, border *certs.Metadata, member *certs.Cert, name pdu.Name, chain *certs.Chain, addrs []string, seq uint64, expiry time.Time) (*Record, error) {
	r := &Record{Kind: KindBorder, Name: name, Addrs: addrs, Chain: chain, Border: border, BorderMember: member, Sequence: seq}
	r.Expiry = expiry
	if expiry.IsZero() {
		r.Expiry = r.ChainExpiry()
	}
	if err := r.Sign(borderKey); err != nil {
		return nil, err
	}
	return r, nil
}

// Tombstone returns a signed withdrawal of r's name with sequence seq
// (which must exceed r.Sequence to win), signed with key.
func (r *Record) Tombstone(key ed25519.PrivateKey, seq uint64) (*Record, error) {
	t := &Record{Kind: r.Kind, Name: r.Name, Chain: r.Chain, Border: r.Border, BorderMember: r.BorderMember,
		Sequence: seq, Expiry: r.Expiry, Withdrawn: true}
	if err := t.Sign(key); err != nil {
		return nil, err
	}
	return t, nil
}

// Sign checks r's shape, signs it with key (which must be the signer's key,
// see Signer) and fixes its encoding.
func (r *Record) Sign(key ed25519.PrivateKey) error {
	if len(key) != ed25519.PrivateKeySize {
		return fmt.Errorf("sign record: %w: private key of %d bytes", ErrBadSignature, len(key))
	}
	r.Expiry = r.Expiry.Truncate(time.Second)
	if err := r.checkShape(); err != nil {
		return fmt.Errorf("sign record for %s: %w", r.Name, err)
	}
	signer := r.Signer()
	pub, _ := key.Public().(ed25519.PublicKey)
	if !pub.Equal(signer.Key) {
		return fmt.Errorf("sign record for %s: %w: key is not the %s's", r.Name, ErrBadSignature, r.Kind)
	}
	msg, err := r.signedBytes()
	if err != nil {
		return fmt.Errorf("sign record for %s: %w", r.Name, err)
	}
	r.Signature = ed25519.Sign(key, msg)
	raw, err := r.encode()
	if err != nil {
		return fmt.Errorf("sign record for %s: %w", r.Name, err)
	}
	if len(raw) > MaxRecordSize {
		return fmt.Errorf("sign record for %s: %w: %d bytes > %d", r.Name, ErrTooLarge, len(raw), MaxRecordSize)
	}
	r.raw = raw
	return nil
}

// checkSignature verifies r.Signature with the signer's key.
func (r *Record) checkSignature() error {
	msg, err := r.signedBytes()
	if err != nil {
		return err
	}
	if len(r.Signature) != ed25519.SignatureSize || !ed25519.Verify(r.Signer().Key, msg, r.Signature) {
		return ErrBadSignature
	}
	return nil
}

// checkShape checks what needs no certificate knowledge: kind, presence of
// the parts the kind needs, address syntax and limits.
func (r *Record) checkShape() error {
	switch r.Kind {
	case KindLocation:
		if r.Border != nil || r.BorderMember != nil {
			return fmt.Errorf("%w: location record with border fields", ErrMalformed)
		}
	case KindBorder:
		if r.Border == nil || r.BorderMember == nil {
			return fmt.Errorf("%w: border record without border router", ErrMalformed)
		}
		if len(r.Border.Key) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: border router key", ErrMalformed)
		}
	default:
		return fmt.Errorf("%w: unknown kind %d", ErrMalformed, r.Kind)
	}
	if r.Name.IsZero() {
		return fmt.Errorf("%w: zero name", ErrMalformed)
	}
	// Endpoint is absent when the target advertises itself (no AdCert).
	if r.Chain == nil || r.Chain.Router == nil || r.Chain.Domain == nil || r.Chain.Target == nil ||
		r.Chain.RtCert == nil || r.Chain.Member == nil || (r.Chain.AdCert != nil && r.Chain.Endpoint == nil) {
		return fmt.Errorf("%w: incomplete chain", ErrMalformed)
	}
	if len(r.Chain.Router.Key) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: router key", ErrMalformed)
	}
	if r.Expiry.IsZero() || r.Expiry.Unix() <= 0 {
		return fmt.Errorf("%w: no expiry", ErrMalformed)
	}
	if r.Withdrawn && len(r.Addrs) != 0 {
		return fmt.Errorf("%w: tombstone with addresses", ErrMalformed)
	}
	if !r.Withdrawn && len(r.Addrs) == 0 {
		return fmt.Errorf("%w: no addresses", ErrMalformed)
	}
	if len(r.Addrs) > MaxAddrs {
		return fmt.Errorf("%w: %d addresses > %d", ErrTooLarge, len(r.Addrs), MaxAddrs)
	}
	for _, a := range r.Addrs {
		if len(a) > MaxAddrLen {
			return fmt.Errorf("%w: address of %d bytes > %d", ErrTooLarge, len(a), MaxAddrLen)
		}
		ap, err := netip.ParseAddrPort(a)
		if err != nil || ap.Port() == 0 || ap.String() != a {
			return fmt.Errorf("%w: address %q: want canonical ip:port", ErrMalformed, a)
		}
	}
	return nil
}

// lastSeq keeps NextSequence strictly increasing within a process.
var lastSeq struct {
	mu  sync.Mutex
	seq uint64
}

// NextSequence returns a sequence number that is higher than any earlier
// one from this process and than any one from an earlier run with a clock
// that was not ahead: the Unix time in nanoseconds, bumped if needed.
func NextSequence() uint64 {
	lastSeq.mu.Lock()
	defer lastSeq.mu.Unlock()
	s := uint64(wallclock.Now().UnixNano())
	if s <= lastSeq.seq {
		s = lastSeq.seq + 1
	}
	lastSeq.seq = s
	return s
}

// raiseSequence makes every later NextSequence exceed seq: a sequence this
// process signed that did not come from NextSequence (a Sequencer's, raised
// above its floor; a tombstone's, one above the record it replaces).
func raiseSequence(seq uint64) {
	lastSeq.mu.Lock()
	defer lastSeq.mu.Unlock()
	lastSeq.seq = max(lastSeq.seq, seq)
}

// tombstoneSequence is the sequence of the tombstone replacing a record of
// sequence prev: after it and after anything this process signed, so that
// it supersedes the record, and so that the next record this process
// signs (NextSequence, or a Sequencer's Next) supersedes the tombstone
// rather than tie with it (a tie keeps whichever was merged first).
func tombstoneSequence(prev uint64) uint64 {
	seq := max(NextSequence(), prev+1)
	raiseSequence(seq)
	return seq
}
