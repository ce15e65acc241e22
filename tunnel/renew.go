package tunnel

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

// A link's peer proved its name with credentials that expire (a
// membership's NotAfter), and the link closes then. A renewal must not
// interrupt it: on gdp-tunnel/2 links each side sends its renewed
// credentials on the live link (RENEW, docs/PROTOCOL.md §4.3) and the
// other side, once they verify for the same name, key and domain, moves
// the link's expiry. Redialling every link at each renewal instead (make
// before break) would have to move a router's faces, routes and
// advertisements from one link to the other without losing a PDU; moving
// a timestamp is the smaller change.

// peerWarnFraction: a peer's membership with less than this share of its
// lifetime left is logged once at WARN, the threshold at which the daemons
// warn about their own (cmd/gdp certWarnFraction).
const peerWarnFraction = 0.2

// errPeerExpired closes a link whose peer's credentials expired.
var errPeerExpired = errors.New("tunnel: peer credentials expired")

// Renewals a link verifies: a burst, then one per renewRefill. A real
// renewal is one per reload; the limit bounds the signature checks a peer
// can make us run.
const (
	renewBurst  = 4
	renewRefill = time.Second
)

// renewLogEvery: accepted renewals are logged at most this often per link.
const renewLogEvery = time.Minute

// peerExpiry is when a link's peer's credentials run out.
type peerExpiry struct {
	at     time.Time // zero: never
	warnAt time.Time // zero: no warning (lifetime unknown)
	creds  []byte    // the credentials that say so
	warned bool
}

func newPeerExpiry(at time.Time, creds []byte) peerExpiry {
	pe := peerExpiry{at: at, creds: creds}
	if at.IsZero() {
		return pe
	}
	// The lifetime is the membership's (the credentials of §4.2); other
	// credentials (KeyNameVerifier's) say no more than the expiry.
	if _, member, _, err := DecodeCredentials(creds); err == nil && member.NotBefore.Before(at) {
		pe.warnAt = at.Add(-time.Duration(peerWarnFraction * float64(at.Sub(member.NotBefore))))
	}
	return pe
}

func (l *link) expiry() time.Time {
	l.expMu.Lock()
	defer l.expMu.Unlock()
	return l.exp.at
}

func (l *link) expiryState() peerExpiry {
	l.expMu.Lock()
	defer l.expMu.Unlock()
	return l.exp
}

// watchExpiry returns when the link closes: by its context, or here when
// the peer's credentials expire. Before that it warns once when they near
// their end. A renewal moves both.
func (l *link) watchExpiry() {
	e := l.ep
	for {
		pe := l.expiryState()
		if pe.at.IsZero() {
			select {
			case <-l.ctx.Done():
				return
			case <-l.moved:
				continue
			}
		}
		now := e.cfg.Now()
		expired := time.NewTimer(pe.at.Sub(now))
		var warn <-chan time.Time
		var wt *time.Timer
		if !pe.warned && !pe.warnAt.IsZero() {
			wt = time.NewTimer(pe.warnAt.Sub(now))
			warn = wt.C
		}
		stop := func() {
			expired.Stop()
			if wt != nil {
				wt.Stop()
			}
		}
		select {
		case <-l.ctx.Done():
			stop()
			return
		case <-l.moved:
			stop()
		case <-warn:
			stop()
			l.warnExpiring(pe)
		case <-expired.C:
			stop()
			if !l.expiry().Equal(pe.at) {
				continue // renewed just now
			}
			e.log.Warn("peer's membership expired: link closed",
				logging.Peer(l.peer), logging.Expiry(pe.at), zap.Stringer("kind", l.kind),
				zap.String("fix", "the peer's operator must renew its membership (gdp cert issue member) and install it; the peer is refused until then"))
			l.closeWith(errPeerExpired)
			return
		}
	}
}

// warnExpiring logs, once per peer and credentials, that the peer's
// membership is running out.
func (l *link) warnExpiring(pe peerExpiry) {
	l.expMu.Lock()
	if l.exp.warned || !l.exp.at.Equal(pe.at) {
		l.expMu.Unlock()
		return
	}
	l.exp.warned = true
	l.expMu.Unlock()
	if !l.ep.firstWarning(l.peer, pe.at) {
		return // another link to this peer said it already
	}
	l.ep.log.Warn("peer's membership expires soon: less than 20% of its lifetime left",
		logging.Peer(l.peer), logging.Expiry(pe.at), zap.Stringer("kind", l.kind),
		zap.Duration("left", pe.at.Sub(l.ep.cfg.Now()).Round(time.Second)),
		zap.String("fix", "the peer's operator must renew its membership (gdp cert issue member) and install it: the peer shows the renewed one on this link, which stays up; if not renewed, the link closes at expiry"))
}

// firstWarning records that peer's membership ending at exp is being
// warned about, and reports whether it was not already: one WARN per peer
// and membership, however many links (a client that reconnects) it has.
func (e *Endpoint) firstWarning(peer pdu.Name, exp time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.warned.first(peer, exp, e.cfg.Now())
}

// present sends our current credentials to the peer (RENEW).
func (l *link) present() {
	creds, _ := l.ep.identity()
	if err := l.sendRenew(creds); err != nil {
		if l.ctx.Err() == nil {
			l.ep.log.Warn("could not show the renewed membership on a live link: the peer closes it at the old expiry and it is redialled",
				logging.Peer(l.peer), zap.Error(err))
		}
		return
	}
	l.ep.stats.renewalsSent.Add(1)
}

// presentAll sends the current credentials on every link in ls at once and
// waits for them.
func (e *Endpoint) presentAll(ls []*link) {
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.present()
		}()
	}
	wg.Wait()
}

// encodeRenew is a RENEW message: the 16-byte header (index = length),
// then the credentials.
func encodeRenew(creds []byte) []byte {
	h := ctrlMsg{Type: msgRenew, Index: uint32(len(creds))}.encode()
	return append(h[:], creds...)
}

func (l *link) sendRenew(creds []byte) error {
	if len(creds) == 0 || len(creds) > maxCredentials {
		return fmt.Errorf("tunnel: renew: credentials of %d bytes", len(creds))
	}
	b := encodeRenew(creds)
	l.ctrlMu.Lock()
	defer l.ctrlMu.Unlock()
	l.ctrl.SetWriteDeadline(time.Now().Add(l.ep.cfg.HandshakeTimeout))
	_, err := l.ctrl.Write(b)
	return err
}

// readRenew reads the credentials that follow a RENEW header and acts on
// them. Only a malformed message is an error (it closes the link, as any
// control message out of the protocol does); credentials that do not
// verify are a counted drop.
func (l *link) readRenew(m ctrlMsg) error {
	// The length is checked as the uint32 it is: as an int on a 32-bit
	// platform 2^31 and above are negative and would pass "> max".
	if m.Index == 0 || m.Index > maxCredentials || m.Arg != 0 || m.Epoch != 0 || m.Port != 0 || m.MTU != 0 {
		return fmt.Errorf("%w: bad RENEW header (length %d)", ErrProtocol, m.Index)
	}
	n := int(m.Index)
	creds := make([]byte, n)
	l.ctrl.SetReadDeadline(time.Now().Add(l.ep.cfg.HandshakeTimeout))
	if _, err := io.ReadFull(l.ctrl, creds); err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	l.ctrl.SetReadDeadline(time.Time{})
	l.handleRenew(creds)
	return nil
}

// handleRenew moves the link's expiry to that of the peer's renewed
// credentials if they prove the link's peer (same name, the key the TLS
// handshake bound, the same domain, trusted and valid now). Otherwise the
// link keeps the expiry it has: counted, and the first refusal on a link is
// logged at WARN.
func (l *link) handleRenew(creds []byte) {
	e := l.ep
	l.expMu.Lock()
	old := l.exp.creds
	l.expMu.Unlock()
	if bytes.Equal(creds, old) {
		e.stats.renewalsUnchanged.Add(1)
		return
	}
	if !l.bucket.take(time.Now()) {
		e.stats.renewalsLimited.Add(1)
		return
	}
	exp, err := e.verifyRenewal(l, old, creds)
	if err != nil {
		e.stats.renewalsRefused.Add(1)
		l.refusals++
		if l.refusals == 1 {
			e.log.Warn("peer's renewed membership refused: the link keeps its old expiry",
				logging.Peer(l.peer), logging.Expiry(l.expiry()), logging.Reason(err.Error()),
				zap.String("fix", "the peer sent credentials that do not prove its name in a trusted domain: its operator must install a membership for its own name from the same domain; later refusals on this link are only counted (gdp_tunnel_renewals_received_total{result=\"refused\"})"))
		}
		return
	}
	l.expMu.Lock()
	l.exp = newPeerExpiry(exp, creds)
	l.expMu.Unlock()
	select {
	case l.moved <- struct{}{}:
	default:
	}
	e.stats.renewalsAccepted.Add(1)
	// An honest peer renews once per membership; one that holds two valid
	// memberships and alternates them gets each accepted (a second within
	// the rate limit) and would write a line a second per link: one line a
	// minute per link at most, the rest counted.
	if now := time.Now(); l.renewLog.IsZero() || now.Sub(l.renewLog) >= renewLogEvery {
		l.renewLog = now
		e.log.Info("peer's membership renewed on a live link", logging.Peer(l.peer), logging.Expiry(exp), zap.Stringer("kind", l.kind))
	}
}

// verifyRenewal checks renewed credentials against the link: the verifier
// must accept them for the key the handshake bound and the link's name,
// and a membership must come from the domain of the one it renews (the
// router classified the face, and applied allow_domains, by that domain).
func (e *Endpoint) verifyRenewal(l *link, old, creds []byte) (time.Time, error) {
	if _, om, _, err := DecodeCredentials(old); err == nil {
		_, nm, _, err := DecodeCredentials(creds)
		if err != nil {
			return time.Time{}, err
		}
		if nm.Issuer != om.Issuer {
			return time.Time{}, fmt.Errorf("membership from domain %s, the link's is %s", nm.Issuer, om.Issuer)
		}
	}
	name, exp, err := e.cfg.Verify(l.peerKey, creds)
	if err != nil {
		return time.Time{}, err
	}
	if name != l.peer {
		return time.Time{}, fmt.Errorf("credentials for %s, the link's peer is %s", name, l.peer)
	}
	return exp, nil
}

// renewBucket is a token bucket: renewBurst renewals, then one per
// renewRefill.
type renewBucket struct {
	tokens float64
	last   time.Time
}

func (b *renewBucket) take(now time.Time) bool {
	if b.last.IsZero() {
		b.tokens = renewBurst
	} else {
		b.tokens = min(renewBurst, b.tokens+float64(now.Sub(b.last))/float64(renewRefill))
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// peerExpiries summarises the live links' peers: the soonest expiry (zero
// if none expires) and how many links are past their warning threshold.
func (e *Endpoint) peerExpiries() (soonest time.Time, expiring int) {
	now := e.cfg.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	for l := range e.links {
		pe := l.expiryState()
		if pe.at.IsZero() {
			continue
		}
		if soonest.IsZero() || pe.at.Before(soonest) {
			soonest = pe.at
		}
		if !pe.warnAt.IsZero() && !now.Before(pe.warnAt) {
			expiring++
		}
	}
	return soonest, expiring
}
