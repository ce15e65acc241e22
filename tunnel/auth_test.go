package tunnel

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
)

// domainFixture is a trust domain that can enrol routers.
type domainFixture struct {
	t      testing.TB
	domain *certs.Identity
}

func newDomain(t testing.TB) *domainFixture {
	d, err := certs.NewIdentity(certs.KindDomain, "test domain")
	if err != nil {
		t.Fatal(err)
	}
	return &domainFixture{t: t, domain: d}
}

// member makes a router identity with a membership valid over [nb, na).
func (d *domainFixture) member(nb, na time.Time) (*certs.Identity, *Identity) {
	r, err := certs.NewIdentity(certs.KindRouter, "test router")
	if err != nil {
		d.t.Fatal(err)
	}
	m, err := certs.IssueMember(d.domain, r.Name, nb, na)
	if err != nil {
		d.t.Fatal(err)
	}
	return r, CertIdentity(r, m, d.domain.Meta)
}

func (d *domainFixture) verifier() PeerVerifier {
	return CertVerifier(certs.NewVerifier(d.domain.Meta))
}

func certNode(t *testing.T, id *Identity, v PeerVerifier) *testNode {
	n := newTestNode(t, true, func(c *Config) {
		c.Identity, c.Verify = id, v
		c.HandshakeTimeout = 2 * time.Second
	})
	n.id = id
	return n
}

func TestHandshakeAuthentication(t *testing.T) {
	now := time.Now()
	good := newDomain(t)
	other := newDomain(t)
	_, srvID := good.member(now.Add(-time.Hour), now.Add(time.Hour))
	srv := certNode(t, srvID, good.verifier())

	_, okID := good.member(now.Add(-time.Hour), now.Add(time.Hour))
	_, expiredID := good.member(now.Add(-2*time.Hour), now.Add(-time.Hour))
	_, untrustedID := other.member(now.Add(-time.Hour), now.Add(time.Hour))
	// wrong key: valid credentials of one router, presented with another key
	_, stolenFrom := good.member(now.Add(-time.Hour), now.Add(time.Hour))
	wrongKey := testIdentity(t)
	wrongKey.Name, wrongKey.Credentials = stolenFrom.Name, stolenFrom.Credentials

	tests := []struct {
		name    string
		id      *Identity
		want    pdu.Name // name the dialer expects
		wantErr error
	}{
		{"valid member", okID, srvID.Name, nil},
		{"expected a different name", okID, okID.Name, ErrWrongPeer},
		{"wrong key", wrongKey, srvID.Name, ErrPeerRefused},
		{"expired membership", expiredID, srvID.Name, ErrPeerRefused},
		{"untrusted domain", untrustedID, srvID.Name, ErrPeerRefused},
	}
	for _, tc := range tests {
		for _, kind := range []Kind{KindQUIC, KindRaw} {
			t.Run(tc.name+"/"+kind.String(), func(t *testing.T) {
				cli := certNode(t, tc.id, good.verifier())
				before := srv.ep.Stats()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				l, err := cli.ep.Dial(ctx, srv.ep.Addr(), tc.want, kind)
				if tc.wantErr == nil {
					if err != nil {
						t.Fatalf("dial: %v", err)
					}
					acc, err := srv.ep.Accept(ctx)
					if err != nil {
						t.Fatal(err)
					}
					if acc.Peer() != tc.id.Name || l.Peer() != srvID.Name {
						t.Fatalf("peers: %s, %s", acc.Peer(), l.Peer())
					}
					if !acc.Expiry().After(now) {
						t.Errorf("accepted link has no membership expiry: %v", acc.Expiry())
					}
					if err := l.Send([]byte("hello")); err != nil {
						t.Fatal(err)
					}
					srv.sink.wait(t, 1, 5*time.Second)
					l.Close()
					acc.Close()
					return
				}
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("dial: %v, want %v", err, tc.wantErr)
				}
				if tc.wantErr == ErrPeerRefused {
					// the server refused the client during the TLS handshake:
					// a TLS alert, not the application close a listener
					// sends after a setup it gave up on (its own deadline,
					// say), which the simulator's attach retries
					var closed *quic.ApplicationError
					if errors.As(err, &closed) {
						t.Fatalf("a refusal of credentials reads as an application close: %v", err)
					}
					deadline := time.Now().Add(2 * time.Second)
					for srv.ep.Stats().HandshakesRefused == before.HandshakesRefused && time.Now().Before(deadline) {
						time.Sleep(10 * time.Millisecond)
					}
					if srv.ep.Stats().HandshakesRefused == before.HandshakesRefused {
						t.Error("server did not count a refused handshake")
					}
				}
				short, c2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
				defer c2()
				if acc, err := srv.ep.Accept(short); err == nil {
					t.Fatalf("server accepted %s", acc.Peer())
				}
			})
		}
	}
}

func TestServerRefusesUntrustedServer(t *testing.T) {
	// the dialer too checks: a server whose domain it does not trust is refused
	now := time.Now()
	good, other := newDomain(t), newDomain(t)
	_, srvID := other.member(now.Add(-time.Hour), now.Add(time.Hour))
	srv := certNode(t, srvID, other.verifier())
	_, cliID := good.member(now.Add(-time.Hour), now.Add(time.Hour))
	cli := certNode(t, cliID, good.verifier())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := cli.ep.Dial(ctx, srv.ep.Addr(), srvID.Name, KindQUIC)
	if !errors.Is(err, ErrPeerRefused) {
		t.Fatalf("dial: %v, want ErrPeerRefused", err)
	}
	if cli.ep.Stats().HandshakesRefused == 0 {
		t.Error("dialer did not count the refusal")
	}
}

func TestCredentialsRoundTrip(t *testing.T) {
	d := newDomain(t)
	r, id := d.member(time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	meta, member, domain, err := DecodeCredentials(id.Credentials)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Name() != r.Name || member.Subject != r.Name || domain.Name() != d.domain.Name {
		t.Fatal("credentials did not round-trip")
	}
	for i := range id.Credentials {
		if _, _, _, err := DecodeCredentials(id.Credentials[:i]); err == nil {
			t.Fatalf("truncated to %d bytes decoded", i)
		}
	}
}
