package tunnel

import (
	"context"
	"crypto/ed25519"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/pdu"
)

// errWithdrawn stands for a verifier that no longer trusts the peer's
// domain (a reload that withdrew it).
var errWithdrawn = errors.New("untrusted domain (withdrawn by the test)")

// withdrawable is v until withdraw is set.
func withdrawable(v PeerVerifier, withdrawn *atomic.Bool) PeerVerifier {
	return func(key ed25519.PublicKey, creds []byte) (pdu.Name, time.Time, error) {
		if withdrawn.Load() {
			return pdu.Name{}, time.Time{}, errWithdrawn
		}
		return v(key, creds)
	}
}

// TestRecheckPeers (Session 18): RecheckPeers checks every live link's
// peer again with the verifier in force and closes those it refuses
// (ErrPeerRefused, counted by its return): a client endpoint's reload that
// stopped trusting its router's domain. Under the same trust nothing
// closes and PDUs still cross.
func TestRecheckPeers(t *testing.T) {
	now := time.Now()
	d := newDomain(t)
	_, aID := d.member(now.Add(-time.Hour), now.Add(time.Hour))
	_, bID := d.member(now.Add(-time.Hour), now.Add(time.Hour))
	var withdrawn atomic.Bool
	a := certNode(t, aID, withdrawable(d.verifier(), &withdrawn))
	b := certNode(t, bID, d.verifier())
	la, _ := pair(t, a, b, KindQUIC)
	if n := a.ep.RecheckPeers(); n != 0 || la.Err() != nil {
		t.Fatalf("a recheck under the same trust closed %d links (err %v)", n, la.Err())
	}
	if err := la.Send([]byte("still up")); err != nil {
		t.Fatal(err)
	}
	withdrawn.Store(true)
	if n := a.ep.RecheckPeers(); n != 1 {
		t.Fatalf("a recheck after the withdrawal closed %d links, want 1", n)
	}
	closedWith(t, la, ErrPeerRefused, 10*time.Second, "the link to a peer no longer trusted still open")
	if !errors.Is(la.Err(), errWithdrawn) {
		t.Fatalf("closed with %v, want the verifier's refusal named", la.Err())
	}
}

// TestRecheckPeersDuringSetup (Session 18): a recheck that lands after a
// dial's handshake verified the peer under the old trust but before the
// link is tracked (its sweep cannot see it) still refuses it: the link is
// checked again as it starts, and the dial fails.
func TestRecheckPeersDuringSetup(t *testing.T) {
	now := time.Now()
	d := newDomain(t)
	_, aID := d.member(now.Add(-time.Hour), now.Add(time.Hour))
	_, bID := d.member(now.Add(-time.Hour), now.Add(time.Hour))
	var withdrawn atomic.Bool
	var once sync.Once
	var a *testNode
	a = newTestNode(t, false, func(c *Config) {
		c.Identity, c.Verify = aID, withdrawable(d.verifier(), &withdrawn)
		c.beforeTrack = func() {
			once.Do(func() {
				withdrawn.Store(true)
				a.ep.RecheckPeers()
			})
		}
	})
	a.id = aID
	b := certNode(t, bID, d.verifier())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := a.ep.Dial(ctx, b.ep.Addr(), b.id.Name, KindQUIC)
	if err == nil {
		t.Fatalf("a dial whose peer a recheck during its setup refused returned a link (err %v)", l.Err())
	}
	if !errors.Is(err, ErrPeerRefused) || !errors.Is(err, errWithdrawn) {
		t.Fatalf("dial: %v, want the peer refused by the withdrawal", err)
	}
}
