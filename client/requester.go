package client

import (
	"errors"
	"sync"
	"time"

	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/tunnel"
)

// ErrNoCredentials: the client holds no membership to show (it was not
// attached by an Endpoint, or SetQUICCredentials was not called).
var ErrNoCredentials = errors.New("client: no credentials")

// Credentials returns what the client shows as its identity and domain —
// its node metadata, membership and domain metadata, as its tunnels and
// QUIC handshakes carry them (PROTOCOL.md §4.2) — or nil when it has none.
func (c *Client) Credentials() []byte {
	if cr := c.quic.creds.Load(); cr != nil {
		return cr.raw
	}
	return nil
}

// Member is an identity and the domain a membership proved it in.
type Member struct {
	// Meta is the identity's node metadata (Name() its name, Key its key).
	Meta *certs.Metadata
	// Domain is the domain that issued the membership.
	Domain pdu.Name
	// Own: Domain is the checking client's own domain.
	Own bool
	// NotAfter is when the membership expires.
	NotAfter time.Time
}

// VerifyCredentials checks credentials (PROTOCOL.md §4.2 form) as this
// client's QUIC listener checks a dialer's certificate: they decode, the
// metadata is a node's, and the membership is valid now, issued by a domain
// the client trusts and signed by it. It proves only that the metadata's
// name is a member: the credentials are public, so the caller must tie the
// name to whoever sent them (a capsule server: the PDU's source name, which
// the sender's router verified it holds).
func (c *Client) VerifyCredentials(creds []byte) (Member, error) {
	cr := c.quic.creds.Load()
	if cr == nil {
		return Member{}, ErrNoCredentials
	}
	meta, _, _, err := tunnel.DecodeCredentials(creds)
	if err != nil {
		return Member{}, err
	}
	return cr.member(meta.Key, creds)
}

// Domain is the client's own domain (zero without credentials).
func (c *Client) Domain() pdu.Name {
	if cr := c.quic.creds.Load(); cr != nil {
		return cr.domain
	}
	return pdu.Name{}
}

// requesterProof is what a CREATE sent from src carries to prove the
// requester's identity and domain (wire.Requester, PROTOCOL.md §8.3), nil
// when it cannot: no credentials, or a source whose metadata the client
// does not hold (only its own name and its session name prove). It
// carries the session's metadata whenever the client has a session.
func (c *Client) requesterProof(src pdu.Name) []byte {
	creds := c.Credentials()
	if creds == nil {
		return nil
	}
	r := wire.Requester{Credentials: creds}
	c.advMu.Lock()
	s := c.session
	c.advMu.Unlock()
	if src != c.id.Name && (s == nil || s.Name() != src) {
		return nil
	}
	if s != nil {
		// Whichever of the two names src is: the proof is picked before
		// the CREATE is sent, and the source moves between them when a
		// re-attachment re-advertises the session (ReplyName); the server
		// takes either name with the session's metadata.
		r.Source = s.Marshal()
	}
	b, err := r.Marshal()
	if err != nil {
		return nil
	}
	return b
}

// DefaultProofRefresh is how long a capsule server that answered a request
// carrying our requester proof is taken to remember it
// (CapsuleOptions.ProofRefresh): after that the next request to it carries
// the proof again, in case the server restarted or dropped it from its
// cache (it then counted our requests in its unproven pool meanwhile).
const DefaultProofRefresh = 30 * time.Second

// maxProofMarks bounds the servers and the capsule names remembered (each
// map): beyond, one is forgotten (its next request carries the proof
// again, ~1 KB).
const maxProofMarks = 4096

// proofMarks remembers which servers answered a proof-carrying request
// from which of our names, and when (m, keyed by the server's own name:
// a capsule server answers from it, and its router checked that it holds
// it), and, for requests sent to a capsule's name (any of its replicas
// may take them), which server answered the last one (via). A mark is per
// server, not per capsule name, because the server's requester cache is:
// when routing moves a capsule's name to another replica, the answer
// comes from a server that has not seen the proof, and the next request
// carries it.
type proofMarks struct {
	mu  sync.Mutex
	m   map[pdu.Name]proofMark
	via map[pdu.Name]pdu.Name
}

type proofMark struct {
	src pdu.Name
	at  time.Time
}

// RequestProof is the requester proof (wire.Requester, PROTOCOL.md §8.3) a
// capsule request from src to dst should carry, or nil. dst is a server's
// name, or a capsule's name, taken to reach the server that answered the
// last request sent to it (RequestAnswered). nil when that server
// answered one from src carrying the proof within refresh (it remembers
// the name's proof, so the request needs none and costs no byte more), or
// when the client has no credentials or src is not a name it can prove
// (its own name and its session name). Until the server answers, every
// request to it carries the proof: the first that arrives is the one
// verified, and a lost one costs nothing but its bytes.
func (c *Client) RequestProof(src, dst pdu.Name, refresh time.Duration) []byte {
	if refresh < 0 {
		return nil
	}
	c.proofs.mu.Lock()
	server := dst
	if s, ok := c.proofs.via[dst]; ok {
		server = s
	}
	mk, ok := c.proofs.m[server]
	c.proofs.mu.Unlock()
	if ok && mk.src == src && time.Since(mk.at) < refresh {
		return nil
	}
	return c.requesterProof(src)
}

// RequestAnswered records that server (the answer PDU's source name)
// answered a request from src sent to dst, which carried the requester
// proof if proof is set: server then remembers src's identity. When dst
// is not server (a capsule's name), later requests to dst are taken to
// reach server, so they carry the proof while server has not answered
// one: after a failover the new replica's first answer, to a request
// without the proof, makes the next carry it.
func (c *Client) RequestAnswered(src, dst, server pdu.Name, proof bool) {
	now := time.Now()
	c.proofs.mu.Lock()
	defer c.proofs.mu.Unlock()
	if dst == server {
		delete(c.proofs.via, dst)
	} else {
		if c.proofs.via == nil {
			c.proofs.via = map[pdu.Name]pdu.Name{}
		}
		putBounded(c.proofs.via, dst, server)
	}
	if !proof {
		return
	}
	if c.proofs.m == nil {
		c.proofs.m = map[pdu.Name]proofMark{}
	}
	putBounded(c.proofs.m, server, proofMark{src: src, at: now})
}

// putBounded sets m[k] = v, first forgetting any one entry when m already
// holds maxProofMarks others: a forgotten server or capsule name costs
// only a proof carried again by its next request.
func putBounded[V any](m map[pdu.Name]V, k pdu.Name, v V) {
	if _, ok := m[k]; !ok && len(m) >= maxProofMarks {
		for old := range m {
			delete(m, old)
			break
		}
	}
	m[k] = v
}

// RequestUnanswered records that a request sent to dst got no answer in
// time, or a router's NAK: the server may have stopped (and lose its
// requester cache) or routing may be moving dst to another replica, so
// the next request to dst carries the proof again.
func (c *Client) RequestUnanswered(dst pdu.Name) {
	c.proofs.mu.Lock()
	delete(c.proofs.via, dst)
	delete(c.proofs.m, dst)
	c.proofs.mu.Unlock()
}
