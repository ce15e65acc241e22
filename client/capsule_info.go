package client

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/internal/clock"
	"github.com/gdpnet/gdpnet/pdu"
)

// Placement puts a capsule on one server: the server's name and the
// owner's AdCert for it.
type Placement struct {
	Server pdu.Name
	AdCert *certs.Cert
}

// PlaceCapsule issues AdCerts with the owner key for each server, valid for
// lifetime from now.
func PlaceCapsule(owner *certs.Identity, meta *certs.Metadata, servers []pdu.Name, lifetime time.Duration) ([]Placement, error) {
	now := clock.Now()
	out := make([]Placement, len(servers))
	for i, s := range servers {
		ad, err := certs.IssueAdCert(owner.Key, meta.Name(), s, now.Add(-time.Minute), now.Add(lifetime))
		if err != nil {
			return nil, err
		}
		out[i] = Placement{Server: s, AdCert: ad}
	}
	return out, nil
}

// Create places capsule meta on every server of places, telling each the
// whole replica set and w (0: a majority) in a placement record signed
// with the owner key: writers take the replica set and w from that record
// only. It fails if any server refuses (or does not answer); then the
// placements this call made on the servers before it are deleted again (a
// DELETE signed with the owner key), so a failed create leaves nothing
// behind. Placements that existed before (a renewal) stay.
func (cc *CapsuleClient) Create(ctx context.Context, owner *certs.Identity, meta *certs.Metadata, w int, places []Placement) error {
	if len(places) == 0 || len(places) > wire.MaxReplicas {
		return fmt.Errorf("create: %d replicas (want 1 to %d)", len(places), wire.MaxReplicas)
	}
	if owner == nil {
		return fmt.Errorf("create: no owner identity to sign the placement record")
	}
	name := meta.Name()
	replicas := make([]pdu.Name, len(places))
	for i, p := range places {
		replicas[i] = p.Server
	}
	rec, err := capsule.SignPlacement(owner.Key, meta, replicas, w, clock.Now())
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	// Who asks (Session 14): the server counts the capsule in the share
	// of the requester's identity and domain rather than of its source
	// name; a server before Session 14 ignores the proof (key 13).
	proof := cc.c.requesterProof(cc.c.ReplyName())
	var made []pdu.Name // servers where this call created the placement
	for _, p := range places {
		m := &wire.Message{Op: wire.OpCreate, Capsule: name[:], Metadata: meta.Marshal(), AdCert: p.AdCert.Marshal(),
			Replicas: wire.NameBytes(replicas), W: uint64(rec.W), Placement: rec.Marshal(), Proof: proof}
		rep, err := cc.callOK(ctx, p.Server, m, true)
		if err != nil {
			if errors.Is(err, ErrNoAnswer) {
				// It may have placed it and the answer was lost.
				made = append(made, p.Server)
			}
			err = fmt.Errorf("create %s on %s: %w", name, p.Server, err)
			if len(made) == 0 {
				return err
			}
			// Take back what this call placed; a bounded effort, since
			// ctx may be what ended the create.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*cc.opts.Timeout*time.Duration(cc.opts.Attempts))
			defer cancel()
			if derr := cc.Delete(rctx, owner, name, made); derr != nil {
				return fmt.Errorf("%w; taking back the placements made: %w", err, derr)
			}
			return fmt.Errorf("%w; the placements this create made were deleted again (%d servers)", err, len(made))
		}
		if rep.Msg.Status == wire.StatusCreated {
			made = append(made, p.Server)
		}
	}
	return nil
}

// Delete removes capsule c's placement and data from each server, with a
// DELETE the owner signs for that server now. A server that does not hold
// the capsule (404) counts as done. It tries every server and reports the
// ones that failed.
func (cc *CapsuleClient) Delete(ctx context.Context, owner *certs.Identity, c pdu.Name, servers []pdu.Name) error {
	var errs []error
	for _, s := range servers {
		t := uint64(clock.Now().UnixNano())
		m := &wire.Message{Op: wire.OpDelete, Capsule: c[:], Time: t, Signature: ed25519.Sign(owner.Key, wire.DeleteSigned(c, s, t))}
		_, err := cc.callOK(ctx, s, m, false)
		var se *wire.StatusError
		if errors.As(err, &se) && se.Status == wire.StatusNotFound {
			err = nil
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("delete %s on %s: %w", c, s, err))
		}
	}
	return errors.Join(errs...)
}

// CapsuleInfo is what METADATA returns, verified: the metadata hashes to
// the name, the heartbeat is the writer's, and the frontier has the
// heartbeat's root.
type CapsuleInfo struct {
	Name     pdu.Name
	Server   pdu.Name // the replica that answered
	Meta     *certs.Metadata
	Replicas []pdu.Name // from Placement when there is one, else the server's unsigned word
	W        int
	// Placement is the owner-signed placement record, verified (nil when
	// the server sent none).
	Placement *capsule.Placement
	// ServerKey is the answering server's key, set when its metadata
	// hashes to Server and it holds the owner's AdCert for the capsule
	// (then ServerAdCert is that AdCert): what its receipts verify under.
	ServerKey    ed25519.PublicKey
	ServerAdCert *certs.Cert
	// Head is the replica's durable head; Heartbeat covers it (nil when empty).
	Head      capsule.Head
	Heartbeat *capsule.Heartbeat
	// Evidence, when set, proves the writer forked the capsule.
	Evidence *capsule.Evidence
	// AdCert is the owner's AdCert for the replica that answered, when it
	// sent one signed by the capsule's owner key (nil otherwise).
	AdCert *certs.Cert
}

// AdCertLifeLeft is the fraction of the answering replica's AdCert
// lifetime still ahead at now (0 when expired; 1 when unknown).
func (in *CapsuleInfo) AdCertLifeLeft(now time.Time) float64 {
	if in.AdCert == nil {
		return 1
	}
	total := in.AdCert.NotAfter.Sub(in.AdCert.NotBefore)
	left := in.AdCert.NotAfter.Sub(now)
	if left <= 0 || total <= 0 {
		return 0
	}
	return float64(left) / float64(total)
}

// Info returns a capsule's metadata and the head of one replica: dst is a
// server's name, or the capsule's name for the nearest replica.
func (cc *CapsuleClient) Info(ctx context.Context, c, dst pdu.Name) (*CapsuleInfo, error) {
	rep, err := cc.callOK(ctx, dst, &wire.Message{Op: wire.OpMetadata, Capsule: c[:]}, false)
	if err != nil {
		return nil, fmt.Errorf("info %s: %w", c, err)
	}
	return parseInfo(c, rep)
}

func parseInfo(c pdu.Name, rep wire.Reply) (*CapsuleInfo, error) {
	m := rep.Msg
	meta, err := certs.ParseMetadata(m.Metadata)
	if err != nil {
		return nil, fmt.Errorf("info %s: metadata: %w", c, err)
	}
	if meta.Name() != c || meta.Kind != certs.KindCapsule {
		return nil, fmt.Errorf("info %s: %w: metadata is for %s (%s)", c, capsule.ErrWrongCapsule, meta.Name(), meta.Kind)
	}
	in := &CapsuleInfo{Name: c, Server: rep.From, Meta: meta, Replicas: m.ReplicaNames(), W: int(m.W)}
	if len(m.Placement) > 0 {
		rec, err := capsule.UnmarshalPlacement(m.Placement)
		if err == nil {
			err = rec.Verify(meta)
		}
		if err != nil {
			return nil, fmt.Errorf("info %s from %s: %w", c, rep.From, err)
		}
		in.Placement, in.Replicas, in.W = rec, rec.Replicas, rec.W
	}
	if key, ad, err := serverKey(meta, rep.From, m.AdCert, m.Server, clock.Now()); err == nil {
		in.ServerKey, in.ServerAdCert = key, ad
	}
	if len(m.AdCert) > 0 {
		if ad, err := certs.ParseCert(m.AdCert); err == nil && ad.Kind == certs.KindAdCert && ad.Issuer == c &&
			ad.Subject == rep.From && ad.VerifySignature(meta.Key) {
			in.AdCert = ad
		}
	}
	ci := capsule.Info{Name: c, Writer: meta.WriterKey}
	in.Head = capsule.Head{Tree: &capsule.Tree{}}
	if len(m.Heartbeat) > 0 {
		hb, err := capsule.UnmarshalHeartbeat(m.Heartbeat)
		if err != nil {
			return nil, fmt.Errorf("info %s: %w", c, err)
		}
		if err := hb.Verify(c, ci.Writer); err != nil {
			return nil, fmt.Errorf("info %s: %w", c, err)
		}
		if hb.Seqno != m.Head {
			return nil, fmt.Errorf("info %s: %w: heartbeat %d for head %d", c, capsule.ErrBadProof, hb.Seqno, m.Head)
		}
		fr := make([]capsule.Hash, len(m.Frontier))
		for i, h := range m.Frontier {
			fr[i] = capsule.Hash(h)
		}
		tree, err := capsule.LoadTree(&frontierSource{hashes: fr}, hb.Seqno)
		if err != nil || tree.Root() != hb.Root {
			return nil, fmt.Errorf("info %s: %w: frontier does not give the heartbeat's root", c, capsule.ErrBadProof)
		}
		in.Heartbeat = hb
		in.Head = capsule.Head{Seqno: hb.Seqno, Time: int64(m.Time), Tree: tree, Heartbeat: hb}
		copy(in.Head.Hash[:], m.Hash)
		// The head hash is the last leaf: check it against the frontier's
		// smallest subtree when that subtree is a single leaf.
		if hb.Seqno&1 == 1 && capsule.LeafHash(in.Head.Hash) != fr[len(fr)-1] {
			return nil, fmt.Errorf("info %s: %w: head hash is not the last leaf", c, capsule.ErrBadProof)
		}
	}
	if len(m.Evidence) > 0 {
		ev, err := capsule.UnmarshalEvidence(m.Evidence)
		if err == nil && ev.Verify(ci) == nil {
			in.Evidence = ev
		}
	}
	return in, nil
}

// frontierSource hands LoadTree the frontier hashes in the order it asks
// for them (largest subtree first).
type frontierSource struct {
	hashes []capsule.Hash
	i      int
}

func (f *frontierSource) Node(level uint8, index uint64) (capsule.Hash, error) {
	if f.i >= len(f.hashes) {
		return capsule.Hash{}, fmt.Errorf("frontier too short at node (%d,%d)", level, index)
	}
	h := f.hashes[f.i]
	f.i++
	return h, nil
}

// serverKey returns server's key from its metadata (which must hash to
// server) when adcert is the capsule owner's AdCert for server, valid at
// now.
func serverKey(capsuleMeta *certs.Metadata, server pdu.Name, adcert, serverMeta []byte, now time.Time) (ed25519.PublicKey, *certs.Cert, error) {
	if len(adcert) == 0 || len(serverMeta) == 0 {
		return nil, nil, fmt.Errorf("server %s sent no adcert and metadata", server)
	}
	ad, err := certs.ParseCert(adcert)
	if err != nil {
		return nil, nil, err
	}
	sm, err := certs.ParseMetadata(serverMeta)
	if err != nil {
		return nil, nil, err
	}
	if sm.Name() != server {
		return nil, nil, fmt.Errorf("server metadata hashes to %s, not %s", sm.Name(), server)
	}
	if err := certs.VerifyAdCert(ad, capsuleMeta, server, now); err != nil {
		return nil, nil, err
	}
	return sm.Key, ad, nil
}
