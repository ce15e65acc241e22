package client

import (
	"fmt"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/internal/clock"
	"github.com/gdpnet/gdpnet/pdu"
)

// sessionLifetime is the validity of a session name's AdCert; it is
// re-issued when less than half is left (Session, Maintain and the
// re-advertisement after a re-attach pick up the new one).
const sessionLifetime = 24 * time.Hour

// SessionExtra is the metadata attribute that marks a session name
// (PROTOCOL.md §5.8); its value is the endpoint's own name. Routers take
// such a name only from that endpoint (certs.VerifyRoute, Session 16).
const SessionExtra = certs.SessionOfExtra

// Session is the route for this attachment's own session name: a name no
// other process of the same identity holds, so the answers to requests the
// client sends from it (ReplyName) reach this attachment and no other. It
// is a capsule-kind metadata whose owner and writer key are the client's own
// key, with an AdCert the client issues to itself — verified by routers and
// resolvers like any hosted capsule name (PROTOCOL.md §5.8). Advertise it
// with the client's other names; from then on ReplyName is the session.
func (c *Client) Session() (Route, error) {
	c.advMu.Lock()
	defer c.advMu.Unlock()
	now := clock.Now()
	if c.session == nil {
		meta, err := certs.NewCapsule(c.id.Key, c.id.Meta.Key, "attachment session of "+c.id.Name.String())
		if err != nil {
			return Route{}, fmt.Errorf("session: %w", err)
		}
		meta.Extra = map[string]string{SessionExtra: c.id.Name.String()}
		if err := meta.Validate(); err != nil {
			return Route{}, fmt.Errorf("session: %w", err)
		}
		c.session = meta
	}
	if ad := c.sessionAd; ad == nil || !now.Before(ad.NotAfter.Add(-sessionLifetime/2)) {
		ad, err := certs.IssueAdCert(c.id.Key, c.session.Name(), c.id.Name, now.Add(-time.Minute), now.Add(sessionLifetime))
		if err != nil {
			return Route{}, fmt.Errorf("session: %w", err)
		}
		c.sessionAd = ad
	}
	return Route{Name: c.session.Name(), Target: c.session, AdCert: c.sessionAd}, nil
}

// ReplyName is the source the client's requests carry, where their answers
// go: its session name once the router accepted it, else its own name.
func (c *Client) ReplyName() pdu.Name {
	c.advMu.Lock()
	s := c.session
	c.advMu.Unlock()
	if s != nil {
		n := s.Name()
		c.mu.Lock()
		held := c.held[n]
		c.mu.Unlock()
		if held {
			return n
		}
	}
	return c.id.Name
}
