package tunnel

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gdpnet/gdpnet/certs"
)

// renewed is id's tunnel identity with a fresh membership over [nb, na).
func (d *domainFixture) renewed(id *certs.Identity, nb, na time.Time) *Identity {
	m, err := certs.IssueMember(d.domain, id.Name, nb, na)
	if err != nil {
		d.t.Fatal(err)
	}
	return CertIdentity(id, m, d.domain.Meta)
}

// waitExpiry waits until l's peer expiry is want.
func waitExpiry(t *testing.T, what string, l Link, want time.Time) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !l.Expiry().Equal(want) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: link expiry %v, want %v", what, l.Expiry(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRenewalKeepsLinkUp: both ends' memberships run out 3–4 s from now;
// after a second each renews (SetIdentity, what a daemon's SIGHUP does)
// for 4 s more. Traffic flows both ways all along: the link outlives the
// old NotAfter without a PDU lost, each side's timer moved to the peer's
// new NotAfter, and the link closes then, the renewal not renewed again.
func TestRenewalKeepsLinkUp(t *testing.T) {
	if testing.Short() {
		t.Skip("10 s of real time; skipped with -short")
	}
	for _, kind := range []Kind{KindQUIC, KindRaw} {
		t.Run(kind.String(), func(t *testing.T) {
			t.Parallel()
			now := time.Now()
			old := now.Truncate(time.Second).Add(4 * time.Second)
			renewedAt := old.Add(4 * time.Second)
			d := newDomain(t)
			aCert, aID := d.member(now.Add(-time.Hour), old)
			bCert, bID := d.member(now.Add(-time.Hour), old)
			a, b := certNode(t, aID, d.verifier()), certNode(t, bID, d.verifier())
			la, lb := pair(t, a, b, kind)
			if !la.Expiry().Equal(old) || !lb.Expiry().Equal(old) {
				t.Fatalf("expiries at setup %v, %v; want %v", la.Expiry(), lb.Expiry(), old)
			}

			var sent atomic.Int64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for _, l := range []Link{la, lb} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					tk := time.NewTicker(5 * time.Millisecond)
					defer tk.Stop()
					for {
						select {
						case <-stop:
							return
						case <-tk.C:
							if err := l.Send([]byte("renewal traffic")); err != nil {
								t.Errorf("send: %v", err)
								return
							}
							sent.Add(1)
						}
					}
				}()
			}

			time.Sleep(time.Second)
			if err := a.ep.SetIdentity(d.renewed(aCert, now.Add(-time.Hour), renewedAt)); err != nil {
				t.Fatal(err)
			}
			if err := b.ep.SetIdentity(d.renewed(bCert, now.Add(-time.Hour), renewedAt)); err != nil {
				t.Fatal(err)
			}
			waitExpiry(t, "B's link to A", lb, renewedAt)
			waitExpiry(t, "A's link to B", la, renewedAt)

			// Across the old NotAfter, a second beyond it.
			time.Sleep(time.Until(old.Add(time.Second)))
			close(stop)
			wg.Wait()
			for _, l := range []Link{la, lb} {
				if err := l.Err(); err != nil {
					t.Fatalf("a link closed across the old NotAfter: %v", err)
				}
			}
			n := int(sent.Load())
			if n < 200 {
				t.Fatalf("only %d PDUs sent", n)
			}
			deadline := time.Now().Add(2 * time.Second)
			for a.sink.count()+b.sink.count() < n && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if got := a.sink.count() + b.sink.count(); got != n {
				t.Fatalf("%d PDUs received of %d sent across the renewal", got, n)
			}
			t.Logf("%d PDUs sent both ways across the renewal and the old NotAfter, %d received", n, a.sink.count()+b.sink.count())
			sa, sb := a.ep.Stats(), b.ep.Stats()
			if sa.RenewalsSent != 1 || sb.RenewalsAccepted != 1 || sb.RenewalsSent != 1 || sa.RenewalsAccepted != 1 {
				t.Fatalf("renewals: A sent %d accepted %d, B sent %d accepted %d; want 1 each",
					sa.RenewalsSent, sa.RenewalsAccepted, sb.RenewalsSent, sb.RenewalsAccepted)
			}

			// Not renewed again: the link closes at the new NotAfter.
			select {
			case <-la.Done():
			case <-time.After(time.Until(renewedAt.Add(2 * time.Second))):
				t.Fatalf("the link outlived the renewed membership (%v)", renewedAt)
			}
			if closed := time.Now(); closed.Before(renewedAt) {
				t.Fatalf("the link closed at %v, before the renewed NotAfter %v", closed, renewedAt)
			}
			<-lb.Done()
		})
	}
}

// TestRenewalRefused: credentials a peer sends on a live link that do not
// prove the link's peer — another member's, the peer's name from an
// untrusted or another trusted domain, an expired membership, garbage —
// are refused and counted; the link keeps its expiry and carries traffic;
// the first refusal is one WARN line with the fixed fields.
func TestRenewalRefused(t *testing.T) {
	now := time.Now()
	d, other, second := newDomain(t), newDomain(t), newDomain(t)
	exp := now.Truncate(time.Second).Add(time.Hour)
	core, logs := observer.New(zap.InfoLevel)
	trust := CertVerifier(certs.NewVerifier(d.domain.Meta, second.domain.Meta))
	_, aID := d.member(now.Add(-time.Hour), exp)
	bCert, bID := d.member(now.Add(-time.Hour), exp)
	a := newTestNode(t, false, func(c *Config) {
		c.Identity, c.Verify, c.Logger = aID, trust, zap.New(core)
	})
	a.id = aID
	b := certNode(t, bID, trust)
	la, lb := pair(t, a, b, KindQUIC)

	_, stranger := d.member(now.Add(-time.Hour), exp.Add(time.Hour))
	cases := []struct {
		name  string
		creds []byte
	}{
		{"another member's credentials", stranger.Credentials},
		{"untrusted domain", other.renewed(bCert, now.Add(-time.Hour), exp.Add(time.Hour)).Credentials},
		{"another trusted domain", second.renewed(bCert, now.Add(-time.Hour), exp.Add(time.Hour)).Credentials},
		{"expired", d.renewed(bCert, now.Add(-2*time.Hour), now.Add(-time.Hour)).Credentials},
		{"garbage", []byte("not credentials")},
	}
	for i, tc := range cases {
		if i >= renewBurst {
			time.Sleep(renewRefill) // past the burst a peer gets one check a second
		}
		if err := lb.(*link).sendRenew(tc.creds); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(3 * time.Second)
		for a.ep.Stats().RenewalsRefused != uint64(i+1) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: refused %d, want %d (accepted %d)", tc.name, a.ep.Stats().RenewalsRefused, i+1, a.ep.Stats().RenewalsAccepted)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if !la.Expiry().Equal(exp) || la.Err() != nil {
			t.Fatalf("%s: the link's expiry is %v (want %v), err %v", tc.name, la.Expiry(), exp, la.Err())
		}
	}
	if s := a.ep.Stats(); s.RenewalsAccepted != 0 {
		t.Fatalf("%d forged renewals accepted", s.RenewalsAccepted)
	}
	if err := lb.Send([]byte("still up")); err != nil {
		t.Fatal(err)
	}
	a.sink.wait(t, 1, 3*time.Second)
	warns := logs.FilterMessage("peer's renewed membership refused: the link keeps its old expiry").All()
	if len(warns) != 1 || warns[0].Level != zap.WarnLevel {
		t.Fatalf("refusal lines: %v; want one WARN", warns)
	}
	m := warns[0].ContextMap()
	if m["peer"] != bID.Name.String() || m["reason"] == "" || m["fix"] == "" || m["expiry"] == nil {
		t.Fatalf("refusal line fields %v", m)
	}
	// The peer's own renewal still goes through (once the rate allows).
	time.Sleep(renewRefill)
	renewed := exp.Add(2 * time.Hour)
	if err := b.ep.SetIdentity(d.renewed(bCert, now.Add(-time.Hour), renewed)); err != nil {
		t.Fatal(err)
	}
	waitExpiry(t, "A's link to B", la, renewed.Truncate(time.Second))
}

// TestRenewalRateLimited: a peer that sends renewal after renewal gets a
// burst verified, then one a second; the rest are counted, not checked.
func TestRenewalRateLimited(t *testing.T) {
	now := time.Now()
	d := newDomain(t)
	_, aID := d.member(now.Add(-time.Hour), now.Add(time.Hour))
	bCert, bID := d.member(now.Add(-time.Hour), now.Add(time.Hour))
	a, b := certNode(t, aID, d.verifier()), certNode(t, bID, d.verifier())
	_, lb := pair(t, a, b, KindQUIC)
	const n = renewBurst + 3
	for i := range n {
		creds := d.renewed(bCert, now.Add(-time.Hour), now.Truncate(time.Second).Add(time.Duration(2+i)*time.Hour)).Credentials
		if err := lb.(*link).sendRenew(creds); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		s := a.ep.Stats()
		if s.RenewalsAccepted+s.RenewalsRateLimited == n {
			if s.RenewalsAccepted < renewBurst || s.RenewalsRateLimited == 0 {
				t.Fatalf("accepted %d, rate-limited %d of %d sent at once; want a burst of %d", s.RenewalsAccepted, s.RenewalsRateLimited, n, renewBurst)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRenewalToOlderPeer: a peer that speaks only gdp-tunnel/1 (releases
// before Session 12, which close a link on any control message they do not
// know) negotiates /1, is never sent RENEW, and keeps its link across our
// renewal; it closes the link at our old NotAfter, as it always did.
func TestRenewalToOlderPeer(t *testing.T) {
	now := time.Now()
	d := newDomain(t)
	aCert, aID := d.member(now.Add(-time.Hour), now.Add(time.Hour))
	_, bID := d.member(now.Add(-time.Hour), now.Add(time.Hour))
	a := certNode(t, aID, d.verifier())
	old := olderNode(t, bID, d.verifier())
	for _, dir := range []string{"new dials old", "old dials new"} {
		var la, lb Link
		if dir == "new dials old" {
			la, lb = pair(t, a, old, KindQUIC)
		} else {
			lb, la = pair(t, old, a, KindQUIC)
		}
		before := a.ep.Stats().RenewalsSent
		if err := a.ep.SetIdentity(d.renewed(aCert, now.Add(-time.Hour), now.Add(time.Duration(2+len(dir))*time.Hour))); err != nil {
			t.Fatal(err)
		}
		if got := a.ep.Stats().RenewalsSent; got != before {
			t.Fatalf("%s: %d renewals sent to a gdp-tunnel/1 peer", dir, got-before)
		}
		time.Sleep(300 * time.Millisecond)
		if err := la.Send([]byte("after the renewal")); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		old.sink.wait(t, old.sink.count()+1, 3*time.Second)
		if lb.Err() != nil || la.Err() != nil {
			t.Fatalf("%s: the older peer's link broke: %v / %v", dir, lb.Err(), la.Err())
		}
		la.Close()
	}
}

// TestRenewalOnV1LinkClosesIt pins what a gdp-tunnel/1 endpoint does with a
// RENEW (the reason it is never sent one): it closes the link as a
// control protocol violation.
func TestRenewalOnV1LinkClosesIt(t *testing.T) {
	now := time.Now()
	d := newDomain(t)
	aCert, aID := d.member(now.Add(-time.Hour), now.Add(time.Hour))
	_, bID := d.member(now.Add(-time.Hour), now.Add(time.Hour))
	a := certNode(t, aID, d.verifier())
	old := olderNode(t, bID, d.verifier())
	la, lb := pair(t, a, old, KindQUIC)
	if la.(*link).renew || lb.(*link).renew {
		t.Fatal("gdp-tunnel/2 negotiated with a /1-only peer")
	}
	if err := la.(*link).sendRenew(d.renewed(aCert, now.Add(-time.Hour), now.Add(2*time.Hour)).Credentials); err != nil {
		t.Fatal(err)
	}
	closedWith(t, lb, ErrProtocol, 3*time.Second, "a /1 endpoint took a RENEW")
}

// TestPeerExpiryWarning: a peer whose membership has less than 20 % of
// its lifetime left is logged once at WARN with the fixed fields (once for
// the peer, not once per link), counted per link
// in gdp_tunnel_peers_expiring, and its expiry is the soonest in
// gdp_tunnel_peer_expiry_seconds; its renewal clears the warning state.
func TestPeerExpiryWarning(t *testing.T) {
	now := time.Now()
	d := newDomain(t)
	exp := now.Truncate(time.Second).Add(time.Hour)
	core, logs := observer.New(zap.InfoLevel)
	_, aID := d.member(now.Add(-time.Hour), now.Add(100*time.Hour))
	bCert, bID := d.member(now.Add(-9*time.Hour), exp) // 10 % left
	a := newTestNode(t, false, func(c *Config) {
		c.Identity, c.Verify, c.Logger = aID, d.verifier(), zap.New(core)
	})
	a.id = aID
	b := certNode(t, bID, d.verifier())
	la, _ := pair(t, a, b, KindQUIC)
	const msg = "peer's membership expires soon: less than 20% of its lifetime left"
	deadline := time.Now().Add(3 * time.Second)
	for logs.FilterMessage(msg).Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no warning about the peer's membership")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	warns := logs.FilterMessage(msg).All()
	if len(warns) != 1 || warns[0].Level != zap.WarnLevel {
		t.Fatalf("warnings %v; want one WARN", warns)
	}
	m := warns[0].ContextMap()
	if m["peer"] != bID.Name.String() || m["left"] == nil || !strings.Contains(m["fix"].(string), "peer's operator must renew") {
		t.Fatalf("fields %v", m)
	}
	if e, ok := m["expiry"].(time.Time); !ok || !e.Equal(exp) {
		t.Fatalf("expiry field %v, want %v", m["expiry"], exp)
	}
	gauges := func() (left, expiring float64) {
		t.Helper()
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(a.ep.Collector())
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		left = -1
		for _, mf := range mfs {
			switch mf.GetName() {
			case "gdp_tunnel_peer_expiry_seconds":
				left = mf.GetMetric()[0].GetGauge().GetValue()
			case "gdp_tunnel_peers_expiring":
				expiring = mf.GetMetric()[0].GetGauge().GetValue()
			case "gdp_tunnel_renewals_received_total":
				if n := len(mf.GetMetric()); n != 4 {
					t.Fatalf("%d renewal result series, want 4", n)
				}
			}
		}
		return left, expiring
	}
	// A second link from the same peer (a client that reconnects): no
	// second line about the same membership.
	pair(t, b, a, KindQUIC)
	time.Sleep(200 * time.Millisecond)
	if n := logs.FilterMessage(msg).Len(); n != 1 {
		t.Fatalf("%d warnings about one peer's membership over two links, want 1", n)
	}
	if left, expiring := gauges(); left < 3500 || left > 3600 || expiring != 2 {
		t.Fatalf("gauges: peer expiry in %v s, %v expiring; want ~3600 and 1", left, expiring)
	}
	if err := b.ep.SetIdentity(d.renewed(bCert, now.Add(-time.Hour), now.Add(48*time.Hour))); err != nil {
		t.Fatal(err)
	}
	waitExpiry(t, "A's link to B", la, now.Add(48*time.Hour).Truncate(time.Second))
	// The second link takes the renewal on its own: wait for both (the
	// final fresh-clone make test read the gauges between the two).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		left, expiring := gauges()
		if left >= 47*3600 && expiring == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the renewal: peer expiry in %v s, %v expiring", left, expiring)
		}
	}
}

// TestRenewalMalformedClosesLink: a RENEW whose header is out of the
// protocol (no credentials, more than 16 KiB, a non-zero field) cannot be
// skipped safely and closes the link, as any malformed control message.
func TestRenewalMalformedClosesLink(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    ctrlMsg
	}{
		{"empty", ctrlMsg{Type: msgRenew}},
		{"too long", ctrlMsg{Type: msgRenew, Index: maxCredentials + 1}},
		{"length negative as a 32-bit int", ctrlMsg{Type: msgRenew, Index: 1 << 31}},
		{"epoch set", ctrlMsg{Type: msgRenew, Index: 4, Epoch: 1}},
		{"arg set", ctrlMsg{Type: msgRenew, Arg: 1, Index: 4}},
		{"port set", ctrlMsg{Type: msgRenew, Index: 4, Port: 1}},
		{"mtu set", ctrlMsg{Type: msgRenew, Index: 4, MTU: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newTestNode(t, false, nil), newTestNode(t, false, nil)
			la, lb := pair(t, a, b, KindQUIC)
			if err := lb.(*link).writeControl(tc.m); err != nil {
				t.Fatal(err)
			}
			closedWith(t, la, ErrProtocol, 3*time.Second, "a malformed RENEW was taken")
		})
	}
}

// TestRenewalDuringSetup: a reload that lands after a link's handshake
// showed the old membership but before the link is registered (so the
// reload's sweep of live links missed it) still reaches the peer: the
// link sends the renewal as it starts.
func TestRenewalDuringSetup(t *testing.T) {
	for _, side := range []string{"dialer", "listener"} {
		t.Run(side, func(t *testing.T) {
			now := time.Now()
			d := newDomain(t)
			old := now.Truncate(time.Second).Add(time.Hour)
			renewed := old.Add(time.Hour)
			aCert, aID := d.member(now.Add(-time.Hour), old)
			_, bID := d.member(now.Add(-time.Hour), old)
			var a *testNode
			var once sync.Once
			a = newTestNode(t, false, func(c *Config) {
				c.Identity, c.Verify = aID, d.verifier()
				c.beforeTrack = func() {
					once.Do(func() {
						if err := a.ep.SetIdentity(d.renewed(aCert, now.Add(-time.Hour), renewed)); err != nil {
							t.Error(err)
						}
					})
				}
			})
			a.id = aID
			b := certNode(t, bID, d.verifier())
			var lb Link
			if side == "dialer" {
				_, lb = pair(t, a, b, KindQUIC)
			} else {
				lb, _ = pair(t, b, a, KindQUIC)
			}
			waitExpiry(t, "B's link to A", lb, renewed)
		})
	}
}

// TestRenewalDuringSetupOlderPeer: a reload that lands while a link to a
// gdp-tunnel/1 peer is being set up (the case TestRenewalDuringSetup sends
// the renewal for) sends it no RENEW either — such a peer would close the
// link on it, as a rolling upgrade's reload must not make it do — and the
// link stays up, PDUs crossing it, dialer and listener side.
func TestRenewalDuringSetupOlderPeer(t *testing.T) {
	for _, side := range []string{"dialer", "listener"} {
		t.Run(side, func(t *testing.T) {
			now := time.Now()
			d := newDomain(t)
			exp := now.Truncate(time.Second).Add(time.Hour)
			aCert, aID := d.member(now.Add(-time.Hour), exp)
			_, bID := d.member(now.Add(-time.Hour), exp)
			var a *testNode
			var once sync.Once
			reloaded := make(chan struct{})
			a = newTestNode(t, false, func(c *Config) {
				c.Identity, c.Verify = aID, d.verifier()
				c.beforeTrack = func() {
					once.Do(func() {
						if err := a.ep.SetIdentity(d.renewed(aCert, now.Add(-time.Hour), exp.Add(time.Hour))); err != nil {
							t.Error(err)
						}
						close(reloaded)
					})
				}
			})
			a.id = aID
			old := olderNode(t, bID, d.verifier())
			var la, lb Link
			if side == "dialer" {
				la, lb = pair(t, a, old, KindQUIC)
			} else {
				lb, la = pair(t, old, a, KindQUIC)
			}
			select {
			case <-reloaded:
			case <-time.After(3 * time.Second):
				t.Fatal("the reload during setup did not run")
			}
			time.Sleep(300 * time.Millisecond) // a RENEW sent would have closed the link by now
			if n := a.ep.Stats().RenewalsSent; n != 0 {
				t.Fatalf("%d renewals sent to a gdp-tunnel/1 peer", n)
			}
			if err := la.Send([]byte("after the renewal")); err != nil {
				t.Fatal(err)
			}
			old.sink.wait(t, 1, 3*time.Second)
			if lb.Err() != nil || la.Err() != nil {
				t.Fatalf("the older peer's link broke: %v / %v", lb.Err(), la.Err())
			}
		})
	}
}

// TestRenewalShortensAndRepeats: a renewal with an earlier NotAfter (the
// peer's current membership is the shorter one) closes the link then, not
// at the handshake's later NotAfter, the watch woken by the renewal; and
// the link's own credentials sent again are counted unchanged, checked by
// no one and taking none of the peer's rate budget.
func TestRenewalShortensAndRepeats(t *testing.T) {
	now := time.Now()
	d := newDomain(t)
	_, aID := d.member(now.Add(-time.Hour), now.Add(time.Hour))
	bCert, bID := d.member(now.Add(-time.Hour), now.Add(time.Hour))
	a, b := certNode(t, aID, d.verifier()), certNode(t, bID, d.verifier())
	la, lb := pair(t, a, b, KindQUIC)
	for range 2 * renewBurst {
		if err := lb.(*link).sendRenew(bID.Credentials); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	for a.ep.Stats().RenewalsUnchanged != 2*renewBurst {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v; want %d unchanged", a.ep.Stats(), 2*renewBurst)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := a.ep.Stats(); s.RenewalsAccepted != 0 || s.RenewalsRateLimited != 0 || s.RenewalsRefused != 0 {
		t.Fatalf("the link's own credentials again: %+v; want only unchanged", s)
	}
	sooner := time.Now().Truncate(time.Second).Add(3 * time.Second)
	if err := b.ep.SetIdentity(d.renewed(bCert, now.Add(-time.Hour), sooner)); err != nil {
		t.Fatal(err)
	}
	waitExpiry(t, "A's link to B", la, sooner)
	closedWith(t, la, errPeerExpired, time.Until(sooner.Add(2*time.Second)),
		fmt.Sprintf("the link outlived its peer's shorter renewed membership (%v)", sooner))
}

// TestRenewalLogBounded: a peer holding two valid memberships that
// alternates them on a live link has each accepted (within the rate
// limit) but is logged once, not once per RENEW: accepted renewals make
// one INFO line per link a minute at most.
func TestRenewalLogBounded(t *testing.T) {
	now := time.Now()
	d := newDomain(t)
	core, logs := observer.New(zap.InfoLevel)
	_, aID := d.member(now.Add(-time.Hour), now.Add(time.Hour))
	bCert, bID := d.member(now.Add(-time.Hour), now.Add(time.Hour))
	a := newTestNode(t, false, func(c *Config) {
		c.Identity, c.Verify, c.Logger = aID, d.verifier(), zap.New(core)
	})
	a.id = aID
	b := certNode(t, bID, d.verifier())
	_, lb := pair(t, a, b, KindQUIC)
	one := d.renewed(bCert, now.Add(-time.Hour), now.Truncate(time.Second).Add(2*time.Hour)).Credentials
	two := d.renewed(bCert, now.Add(-time.Hour), now.Truncate(time.Second).Add(3*time.Hour)).Credentials
	for _, creds := range [][]byte{one, two, one, two} {
		if err := lb.(*link).sendRenew(creds); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	for a.ep.Stats().RenewalsAccepted != 4 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v; want 4 accepted", a.ep.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := logs.FilterMessage("peer's membership renewed on a live link").Len(); n != 1 {
		t.Fatalf("%d lines for 4 renewals on one link within a second, want 1", n)
	}
}

// closedWith waits up to within for l to close with an error that is want,
// failing with what if it is still up then.
func closedWith(t *testing.T, l Link, want error, within time.Duration, what string) {
	t.Helper()
	select {
	case <-l.Done():
		if !errors.Is(l.Err(), want) {
			t.Fatalf("closed with %v, want %v", l.Err(), want)
		}
	case <-time.After(within):
		t.Fatal(what)
	}
}

// olderNode is a node of a release before Session 12: it speaks only
// gdp-tunnel/1 (and so closes a link on a RENEW).
func olderNode(t *testing.T, id *Identity, v PeerVerifier) *testNode {
	n := newTestNode(t, false, func(c *Config) {
		c.Identity, c.Verify, c.onlyV1 = id, v, true
	})
	n.id = id
	return n
}
