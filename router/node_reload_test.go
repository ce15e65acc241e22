package router_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/router"
)

// TestNodeReloadAllOrNothing (Session 18): a reload whose identity the
// tunnel refuses changes nothing in the router either. Here the keystore's
// key no longer matches the router's metadata (a key file overwritten):
// the router's own check passes (the name is the metadata's), the tunnel's
// does not (its key changed). Before, `gdp router` reloaded the router
// first — its renewed membership and trust in force — and then failed on
// the tunnel, which kept showing the old membership: half taken. The same
// reload with the right key goes through, in both.
func TestNodeReloadAllOrNothing(t *testing.T) {
	w := newWorld(t)
	n, rc := w.startNode("router", router.Config{})
	oldExpiry := n.Router.Summary().MemberExpiry
	now := time.Now()
	renewed, err := certs.IssueMember(w.dom.ID, rc.ID.Name, now.Add(-time.Minute), now.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	wrongKey := &certs.Identity{Meta: rc.ID.Meta, Name: rc.ID.Name, Key: otherKey}
	if err := n.Reload(wrongKey, renewed, rc.Domain, w.dom.Verifier, nil); err == nil {
		t.Fatal("a reload whose key the tunnel refuses succeeded")
	}
	if got := n.Router.Summary().MemberExpiry; !got.Equal(oldExpiry) {
		t.Fatalf("the router took the membership (expiry %v, was %v) of a reload its tunnel refused: half taken", got, oldExpiry)
	}
	if err := n.Reload(rc.ID, renewed, rc.Domain, w.dom.Verifier, nil); err != nil {
		t.Fatalf("the same reload with the right key: %v", err)
	}
	if got := n.Router.Summary().MemberExpiry; !got.Equal(renewed.NotAfter) {
		t.Fatalf("membership expiry %v after the reload, want the renewed %v", got, renewed.NotAfter)
	}
}
