package resolver

import (
	"context"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/pdu"
)

// FederatedConfig joins a domain DHT to the global tier.
type FederatedConfig struct {
	// Local is this node's domain DHT. Required.
	Local *DHT
	// Global is the global DHT, set only on border nodes. A border node
	// republishes every location record of its domain it learns (its own
	// and those exported to it) as a border record "name is in this domain
	// via this border", signed with its key, at BorderAddrs.
	Global      *DHT
	BorderAddrs []string
	// Borders are the domain-tier multiaddrs (…/p2p/<id>) of the domain's
	// border nodes. A non-border node exports its records to them and asks
	// them for global lookups.
	Borders []string
	// GlobalVerifier checks border records a non-border node receives from
	// its borders (Kind KindBorder, the federation's trusted domains).
	// Default: the local DHT's trusted domains.
	GlobalVerifier *Verifier
	Logger         *zap.Logger
}

// Federated is the Resolver of a node in a federation: lookups go to the
// domain DHT first, then to the global tier (directly on a border node,
// through a border otherwise); publishing a name also announces it on the
// global tier as "name is in domain D via border B".
type Federated struct {
	cfg     FederatedConfig
	log     *zap.Logger
	borders []peer.AddrInfo
	gv      *Verifier
}

var _ Resolver = (*Federated)(nil)

// NewFederated builds the federated resolver. On a border node it also
// starts serving the border protocol to the domain's nodes.
func NewFederated(cfg FederatedConfig) (*Federated, error) {
	if cfg.Local == nil {
		return nil, errors.New("federated: local DHT is required")
	}
	if cfg.Global != nil && len(cfg.BorderAddrs) == 0 {
		return nil, errors.New("federated: a border node needs border_addrs (where other domains reach it)")
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	f := &Federated{cfg: cfg, log: cfg.Logger, gv: cfg.GlobalVerifier}
	if f.gv == nil {
		f.gv = &Verifier{Certs: cfg.Local.cfg.Certs, Kind: KindBorder, trust: &cfg.Local.gate.trust}
	}
	for _, a := range cfg.Borders {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			return nil, fmt.Errorf("federated: border %q: %w", a, err)
		}
		info, err := peer.AddrInfoFromP2pAddr(m)
		if err != nil {
			return nil, fmt.Errorf("federated: border %q: %w", a, err)
		}
		f.borders = append(f.borders, *info)
	}
	if cfg.Global != nil {
		cfg.Local.host.SetStreamHandler(borderProtocol(cfg.Local), cfg.Local.gated(f.handleBorder))
	}
	return f, nil
}

// IsBorder reports whether this node is on the global tier.
func (f *Federated) IsBorder() bool { return f.cfg.Global != nil }

// Publish publishes rec in the domain DHT, then announces it globally.
// The domain publish must succeed; a failed global announcement is
// returned too (wrapped), after the local one took effect.
func (f *Federated) Publish(ctx context.Context, rec *Record) error {
	if err := f.cfg.Local.Publish(ctx, rec); err != nil {
		return err
	}
	if f.cfg.Global != nil {
		return f.announce(ctx, rec)
	}
	if len(f.borders) == 0 {
		return nil
	}
	raw := rec.Bytes()
	_, err := f.ask(ctx, borderRequest{Op: opExport, Record: raw})
	if err != nil {
		return fmt.Errorf("publish %s: export to border: %w", rec.Name, err)
	}
	return nil
}

// announce publishes the border record for rec on the global tier.
func (f *Federated) announce(ctx context.Context, rec *Record) error {
	g := f.cfg.Global
	br, err := NewBorder(g.cfg.Identity.Key, g.cfg.Identity.Meta, g.own.Load().member, rec.Name, rec.Chain,
		f.cfg.BorderAddrs, rec.Sequence, rec.Expiry)
	if err != nil {
		return fmt.Errorf("announce %s: %w", rec.Name, err)
	}
	if rec.Withdrawn {
		if br, err = br.Tombstone(g.cfg.Identity.Key, rec.Sequence); err != nil {
			return fmt.Errorf("announce %s: %w", rec.Name, err)
		}
	}
	if err := g.Publish(ctx, br); err != nil {
		return fmt.Errorf("announce %s globally: %w", rec.Name, err)
	}
	return nil
}

// Lookup tries the domain DHT, then the global tier.
func (f *Federated) Lookup(ctx context.Context, name pdu.Name) (*Record, error) {
	rec, err := f.cfg.Local.Lookup(ctx, name)
	if err == nil || !errors.Is(err, ErrNotFound) {
		return rec, err
	}
	if f.cfg.Global != nil {
		return f.cfg.Global.Lookup(ctx, name)
	}
	if len(f.borders) == 0 {
		return nil, err
	}
	resp, err := f.ask(ctx, borderRequest{Op: opLookup, Name: name[:]})
	if err != nil {
		return nil, fmt.Errorf("lookup %s: %w", name, err)
	}
	b, err := ParseRecord(resp.Record)
	if err != nil {
		return nil, fmt.Errorf("lookup %s: border answered: %w", name, err)
	}
	if b.Name != name {
		return nil, fmt.Errorf("lookup %s: border answered for %s: %w", name, b.Name, ErrWrongKey)
	}
	if _, err := f.gv.Verify(b); err != nil {
		return nil, fmt.Errorf("lookup %s: border answered: %w", name, err)
	}
	if b.Withdrawn {
		return nil, fmt.Errorf("lookup %s: %w: withdrawn", name, ErrNotFound)
	}
	return b, nil
}

// LookupAll tries the domain DHT, then the global tier, for every
// location of name. Through a border node (not on the global tier
// itself) the global answer is the one record the border returns.
func (f *Federated) LookupAll(ctx context.Context, name pdu.Name) ([]*Record, error) {
	all, err := f.cfg.Local.LookupAll(ctx, name)
	if err == nil || !errors.Is(err, ErrNotFound) {
		return all, err
	}
	if f.cfg.Global != nil {
		return f.cfg.Global.LookupAll(ctx, name)
	}
	if len(f.borders) == 0 {
		return nil, err
	}
	rec, err := f.Lookup(ctx, name)
	if err != nil {
		return nil, err
	}
	return []*Record{rec}, nil
}

// Withdraw withdraws name locally and then globally: a border puts its
// own border tombstone, another node exports its signed tombstone to a
// border, which does the same.
func (f *Federated) Withdraw(ctx context.Context, name pdu.Name) error {
	tomb, err := f.cfg.Local.withdraw(ctx, name)
	if err != nil {
		return err
	}
	switch {
	case f.cfg.Global != nil:
		if gerr := f.cfg.Global.Withdraw(ctx, name); gerr != nil && !errors.Is(gerr, ErrNotPublished) {
			return gerr
		}
	case tomb != nil && len(f.borders) > 0:
		if _, err := f.ask(ctx, borderRequest{Op: opExport, Record: tomb.Bytes()}); err != nil {
			return fmt.Errorf("withdraw %s: export to border: %w", name, err)
		}
	}
	return nil
}

// WithdrawIf is Withdraw for a name that must still point at router (see
// Resolver). When the domain tier says the name moved, nothing is
// withdrawn on either tier: the new router's announcement replaces ours.
func (f *Federated) WithdrawIf(ctx context.Context, name, router pdu.Name) error {
	tomb, err := f.cfg.Local.withdrawIf(ctx, name, router)
	if err != nil {
		return err
	}
	switch {
	case f.cfg.Global != nil:
		gerr := f.cfg.Global.WithdrawIf(ctx, name, router)
		if gerr != nil && !errors.Is(gerr, ErrNotPublished) && !errors.Is(gerr, ErrSuperseded) {
			return gerr
		}
	case tomb != nil && len(f.borders) > 0:
		if _, err := f.ask(ctx, borderRequest{Op: opExport, Record: tomb.Bytes()}); err != nil {
			return fmt.Errorf("withdraw %s: export to border: %w", name, err)
		}
	}
	return nil
}

// Close closes both tiers.
func (f *Federated) Close() error {
	var errs []error
	if f.cfg.Global != nil {
		errs = append(errs, f.cfg.Global.Close())
	}
	errs = append(errs, f.cfg.Local.Close())
	return errors.Join(errs...)
}
