package certs

import (
	"bytes"
)

// Chain is a route chain: "name N is reachable at router R", with every
// certificate and metadata a verifier needs and nothing else.
type Chain struct {
	Target   *Metadata // metadata of the advertised name N (a capsule, or the endpoint itself)
	AdCert   *Cert     // nil when N is the endpoint's own name
	Endpoint *Metadata // server S (== Target when advertising itself)
	RtCert   *Cert
	Router   *Metadata
	Member   *Cert // router R's membership in domain D
	Domain   *Metadata
}

// Wire keys of the chain map (docs/PROTOCOL.md §3.4). Each value is the
// byte string of the piece's own canonical encoding.
const (
	chTarget   = 1
	chAdCert   = 2
	chEndpoint = 3
	chRtCert   = 4
	chRouter   = 5
	chMember   = 6
	chDomain   = 7
)

type chainWire struct {
	Target   []byte `cbor:"1,keyasint"`
	AdCert   []byte `cbor:"2,keyasint,omitempty"`
	Endpoint []byte `cbor:"3,keyasint,omitempty"`
	RtCert   []byte `cbor:"4,keyasint"`
	Router   []byte `cbor:"5,keyasint"`
	Member   []byte `cbor:"6,keyasint"`
	Domain   []byte `cbor:"7,keyasint"`
}

// Marshal encodes the chain as a deterministic CBOR map whose values are
// the pieces' encodings. Keys 2 and 3 (AdCert, Endpoint) appear together or
// not at all; a self-advertisement omits both. Missing required pieces are
// encoded empty, which ParseChain refuses.
func (c *Chain) Marshal() []byte {
	b := make([]byte, 0, 1024)
	n := uint64(5)
	if c.AdCert != nil {
		n += 2
	}
	b = appendHead(b, majorMap, n)
	b = appendHead(b, majorUint, chTarget)
	b = appendBytes(b, marshalMeta(c.Target))
	if c.AdCert != nil {
		b = appendHead(b, majorUint, chAdCert)
		b = appendBytes(b, c.AdCert.Marshal())
		b = appendHead(b, majorUint, chEndpoint)
		b = appendBytes(b, marshalMeta(c.Endpoint))
	}
	b = appendHead(b, majorUint, chRtCert)
	b = appendBytes(b, marshalCert(c.RtCert))
	b = appendHead(b, majorUint, chRouter)
	b = appendBytes(b, marshalMeta(c.Router))
	b = appendHead(b, majorUint, chMember)
	b = appendBytes(b, marshalCert(c.Member))
	b = appendHead(b, majorUint, chDomain)
	b = appendBytes(b, marshalMeta(c.Domain))
	return b
}

func marshalMeta(m *Metadata) []byte {
	if m == nil {
		return nil
	}
	return m.Marshal()
}

func marshalCert(c *Cert) []byte {
	if c == nil {
		return nil
	}
	return c.Marshal()
}

// ParseChain decodes a chain; each piece is parsed with its own strict
// parser and the whole is re-encoded and compared. It checks structure
// only: use Verifier.VerifyRoute to check the links.
func ParseChain(b []byte) (*Chain, error) {
	var w chainWire
	if err := decMode.Unmarshal(b, &w); err != nil {
		return nil, malformed("chain", "%v", err)
	}
	if (w.AdCert == nil) != (w.Endpoint == nil) {
		return nil, malformed("chain", "adcert (key 2) and endpoint (key 3) must come together")
	}
	var c Chain
	var err error
	if c.Target, err = ParseMetadata(w.Target); err != nil {
		return nil, &ChainError{Link: LinkTarget, Err: ErrMalformed, Detail: err.Error()}
	}
	if w.AdCert != nil {
		if c.AdCert, err = ParseCert(w.AdCert); err != nil {
			return nil, &ChainError{Link: LinkAdCert, Err: ErrMalformed, Detail: err.Error()}
		}
		if c.Endpoint, err = ParseMetadata(w.Endpoint); err != nil {
			return nil, &ChainError{Link: LinkEndpoint, Err: ErrMalformed, Detail: err.Error()}
		}
	} else {
		c.Endpoint = c.Target
	}
	if c.RtCert, err = ParseCert(w.RtCert); err != nil {
		return nil, &ChainError{Link: LinkRtCert, Err: ErrMalformed, Detail: err.Error()}
	}
	if c.Router, err = ParseMetadata(w.Router); err != nil {
		return nil, &ChainError{Link: LinkRouter, Err: ErrMalformed, Detail: err.Error()}
	}
	if c.Member, err = ParseCert(w.Member); err != nil {
		return nil, &ChainError{Link: LinkMember, Err: ErrMalformed, Detail: err.Error()}
	}
	if c.Domain, err = ParseMetadata(w.Domain); err != nil {
		return nil, &ChainError{Link: LinkDomain, Err: ErrMalformed, Detail: err.Error()}
	}
	if !bytes.Equal(c.Marshal(), b) {
		return nil, &ChainError{Link: LinkChain, Err: ErrMalformed, Detail: "not the canonical encoding"}
	}
	return &c, nil
}
