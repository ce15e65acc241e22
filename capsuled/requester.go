package capsuled

import (
	"bytes"
	"crypto/ed25519"
	"fmt"

	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/tunnel"
)

// Who a placement counts against (Session 14). A CREATE's source name is
// all the server knew before: its router vouches that the sender holds it,
// but one member may hold up to advertise.max_names_per_identity names, so
// shares kept per name were that many shares per member. A CREATE now
// carries the requester's proof (wire.Requester, key 13): its node
// metadata, membership and domain metadata, and, when it sends from a
// capsule-kind name such as its session name, that name's metadata. The
// server takes it when the membership verifies against a domain it trusts
// (client.VerifyCredentials: its own and the ones its endpoint trusts) and
// the proof is of the PDU's source name: the node's own name, or one of
// its session names (a capsule-kind name owned by the node's key and
// marked as its session: its AdCert is issued to the node itself; any
// other capsule name of that key may be held by a server hosting it, see
// sourceOf).
//
// Then max_per_requester and max_bytes_per_requester are kept per identity
// key, and max_per_domain and max_bytes_per_domain per domain other than
// the server's own. A CREATE without a proof that holds (an older client, a
// name that cannot prove, a forged, expired or untrusted membership) counts
// in its source name's share as before and, with every other unproven
// requester, in ONE pool limited as one more domain: 100,000 names that
// prove nothing get one domain's share together.

// unprovenGroup is the group of every placement made by an unproven
// requester: all ones, never a domain's name (a hash).
var unprovenGroup = func() (n pdu.Name) {
	for i := range n {
		n[i] = 0xff
	}
	return n
}()

// unprovenMark is what a placement file holds at key 13 for a placement
// an unproven requester made (a placement file from before Session 14 has
// nothing there and counts in no group).
var unprovenMark = []byte{0}

// Proof results (gdp_capsuled_requester_proofs_total{result}).
const (
	proofProven  = "proven"
	proofNone    = "none"    // no proof sent: an older client, or a source it cannot prove
	proofInvalid = "invalid" // a proof that does not hold: malformed, untrusted, expired, another name's
)

// who is whose shares a placement counts in.
type who struct {
	// share is the max_per_requester key: the identity key when proven,
	// else the source name.
	share pdu.Name
	// group is the max_per_domain key: the proven domain (the server's
	// own too: not limited, see admit), unprovenGroup, or zero (a
	// placement from before Session 14).
	group pdu.Name
	// proof is what the placement file keeps at key 13: the requester's
	// proof when proven, unprovenMark when not, nil before Session 14.
	proof []byte
	// name is the proven identity's name, for what a refusal says (zero
	// when unproven, and for placements loaded from disk).
	name pdu.Name
}

// unproven is the who of a requester that proved nothing.
func unproven(src pdu.Name) who {
	return who{share: src, group: unprovenGroup, proof: unprovenMark}
}

// requester decides whose shares a CREATE from src with proof b counts in.
// It returns the result label and, for an invalid proof, why.
func (s *Server) requester(src pdu.Name, b []byte) (who, string, error) {
	if len(b) == 0 {
		return unproven(src), proofNone, nil
	}
	m, err := s.proveRequester(src, b) // a worker's check: no budget
	if err != nil {
		return unproven(src), proofInvalid, err
	}
	return who{share: keyShare(m.Meta.Key), group: m.Domain, proof: b, name: m.Meta.Name()}, proofProven, nil
}

// proveRequester checks proof b (a wire.Requester) of a request from src:
// a membership of a domain the server trusts, valid now, of src (the
// node's own name or its session name, sourceOf). It is the whole check
// of a CREATE's proof (a worker's, no budget); the requester cache
// (requestercache.go) runs the same two steps with its verify gate
// between them.
func (s *Server) proveRequester(src pdu.Name, b []byte) (client.Member, error) {
	creds, _, err := requesterClaim(src, b)
	if err != nil {
		return client.Member{}, err
	}
	return s.verifyMembership(creds)
}

// requesterClaim does the checks of proof b that parse and compare: it
// returns the credentials and the name of the node they claim once they
// are of src (sourceOf). No signature is checked: a member sending its
// own credentials from each of its many names costs a parse each, not a
// chain verify.
func requesterClaim(src pdu.Name, b []byte) (creds []byte, node pdu.Name, err error) {
	r, err := wire.UnmarshalRequester(b)
	if err != nil {
		return nil, pdu.Name{}, err
	}
	meta, _, _, err := tunnel.DecodeCredentials(r.Credentials)
	if err != nil {
		return nil, pdu.Name{}, fmt.Errorf("membership: %w", err)
	}
	if err := sourceOf(meta, r.Source, src); err != nil {
		return nil, pdu.Name{}, err
	}
	return r.Credentials, meta.Name(), nil
}

// verifyMembership checks the membership chain of creds: the signature.
func (s *Server) verifyMembership(creds []byte) (client.Member, error) {
	m, err := s.cli.VerifyCredentials(creds)
	if err != nil {
		return client.Member{}, fmt.Errorf("membership: %w", err)
	}
	return m, nil
}

// sourceOf checks that src is node's own name or the session name whose
// metadata source is. Source, when sent, must be one of node's session
// names: a capsule-kind name owned by node's key and marked as node's
// session (client.SessionExtra). The client sends it whenever it has a
// session, and the server takes either name: the client picks the proof
// before it sends, and its source moves between its own name and its
// session name when a re-attachment re-advertises the session, so a
// CREATE sent or resent meanwhile still proves (it would have landed in
// the unproven pool for good).
//
// Only session names: a capsule name node's key owns is not enough. Its
// owner issues AdCerts for such names to the capsule servers it places
// them on, so every server hosting a capsule of a member whose owner key
// is its node key holds that name at its router and could send a CREATE
// from it with the member's (public) credentials: it would be counted
// as that member — as many identity shares as owners it hosts, each
// taken from its victim. A session name's AdCert is issued only to the
// node itself (client.Session), and the marker is part of the name.
func sourceOf(node *certs.Metadata, source []byte, src pdu.Name) error {
	var session pdu.Name
	if len(source) > 0 {
		sm, err := certs.ParseMetadata(source)
		if err != nil {
			return fmt.Errorf("source metadata: %w", err)
		}
		switch {
		case sm.Kind != certs.KindCapsule:
			return fmt.Errorf("source metadata is a %s, not a capsule-kind name", sm.Kind)
		case !bytes.Equal(sm.Key, node.Key):
			return fmt.Errorf("source %s is not owned by %s's key", sm.Name(), node.Name())
		case sm.Extra[client.SessionExtra] != node.Name().String():
			return fmt.Errorf("source %s is not a session name of %s (only the node's own name and its session names prove: a capsule name its key owns may be held by any server it was placed on)", sm.Name(), node.Name())
		}
		session = sm.Name()
	}
	switch {
	case src == node.Name(), len(source) > 0 && src == session:
		return nil
	case len(source) > 0:
		return fmt.Errorf("the request comes from %s, neither %s nor its session name %s", src, node.Name(), session)
	}
	return fmt.Errorf("the credentials are %s's, the request comes from %s", node.Name(), src)
}

// keyShare is an identity key as a share key (zero for a key of another
// length, which metadata validation refuses before).
func keyShare(k ed25519.PublicKey) pdu.Name {
	if len(k) != pdu.NameLen {
		return pdu.Name{}
	}
	return pdu.Name(k)
}

// whoOfFile is the who a placement file records: proof at key 13, creator
// at key 11. The proof was verified when the CREATE was served; only its
// identity key and domain are read back (an expired membership since
// keeps the capsules it placed in its share).
func whoOfFile(proof []byte, creator pdu.Name) (who, error) {
	switch {
	case len(proof) == 0:
		return who{share: creator}, nil
	case bytes.Equal(proof, unprovenMark):
		return unproven(creator), nil
	}
	r, err := wire.UnmarshalRequester(proof)
	if err != nil {
		return who{}, err
	}
	meta, member, _, err := tunnel.DecodeCredentials(r.Credentials)
	if err != nil {
		return who{}, fmt.Errorf("requester proof: %w", err)
	}
	return who{share: keyShare(meta.Key), group: member.Issuer, proof: proof}, nil
}
