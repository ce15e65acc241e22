package resolver

import (
	"context"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/internal/logging"
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

// borderProtocol carries export and global-lookup requests from a domain's
// nodes to its border nodes, over the domain DHT's host (members only).
func borderProtocol(d *DHT) protocol.ID { return d.prefix + "/border/1.0.0" }

// Request and response of the border protocol (PROTOCOL.md §6.4).
type borderRequest struct {
	Op     uint8  `cbor:"1,keyasint"` // 1 export, 2 lookup
	Name   []byte `cbor:"2,keyasint,omitempty"`
	Record []byte `cbor:"3,keyasint,omitempty"`
}

type borderResponse struct {
	Status uint8  `cbor:"1,keyasint"` // 0 ok, 1 not found, 2 refused, 3 error
	Record []byte `cbor:"2,keyasint,omitempty"`
	Detail string `cbor:"3,keyasint,omitempty"`
}

const (
	opExport = 1
	opLookup = 2

	statusOK       = 0
	statusNotFound = 1
	statusRefused  = 2
	statusError    = 3
)

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
		f.gv = &Verifier{Certs: cfg.Local.cfg.Certs, Kind: KindBorder}
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
		cfg.Local.host.SetStreamHandler(borderProtocol(cfg.Local), f.handleBorder)
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
	br, err := NewBorder(g.cfg.Identity.Key, g.cfg.Identity.Meta, g.cfg.Member, rec.Name, rec.Chain,
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

// Close closes both tiers.
func (f *Federated) Close() error {
	var errs []error
	if f.cfg.Global != nil {
		errs = append(errs, f.cfg.Global.Close())
	}
	errs = append(errs, f.cfg.Local.Close())
	return errors.Join(errs...)
}

// ask sends req to the first border that answers.
func (f *Federated) ask(ctx context.Context, req borderRequest) (*borderResponse, error) {
	var errs []error
	for _, b := range f.borders {
		resp, err := f.askOne(ctx, b, req)
		if err == nil {
			switch resp.Status {
			case statusOK:
				return resp, nil
			case statusNotFound:
				return nil, fmt.Errorf("%w (border %s)", ErrNotFound, b.ID)
			}
			err = fmt.Errorf("border %s: status %d: %s", b.ID, resp.Status, resp.Detail)
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func (f *Federated) askOne(ctx context.Context, b peer.AddrInfo, req borderRequest) (*borderResponse, error) {
	local := f.cfg.Local
	if err := local.host.Connect(ctx, b); err != nil {
		return nil, err
	}
	s, err := local.host.NewStream(ctx, b.ID, borderProtocol(local))
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	out, err := encMode.Marshal(req)
	if err != nil {
		s.Reset()
		return nil, err
	}
	if _, err := s.Write(out); err != nil {
		s.Reset()
		return nil, err
	}
	if err := s.CloseWrite(); err != nil {
		s.Reset()
		return nil, err
	}
	in, err := readAllLimited(s, MaxRecordSize+256)
	if err != nil {
		s.Reset()
		return nil, err
	}
	var resp borderResponse
	if err := decMode.Unmarshal(in, &resp); err != nil {
		return nil, fmt.Errorf("border response: %w: %v", ErrMalformed, err)
	}
	return &resp, nil
}

// handleBorder serves export and lookup requests from the domain's nodes
// (only admitted members reach it: the stream rides the domain host).
func (f *Federated) handleBorder(s network.Stream) {
	defer s.Close()
	local := f.cfg.Local
	p := s.Conn().RemotePeer()
	ctx, cancel := context.WithTimeout(local.ctx, local.cfg.PutTimeout+local.cfg.HandshakeTimeout)
	defer cancel()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	if !local.gate.wait(ctx, p) {
		s.Reset()
		return
	}
	resp := f.serve(ctx, s)
	out, err := encMode.Marshal(resp)
	if err == nil {
		_, err = s.Write(out)
	}
	if err != nil {
		s.Reset()
	}
}

func (f *Federated) serve(ctx context.Context, s network.Stream) borderResponse {
	in, err := readAllLimited(s, MaxRecordSize+256)
	if err != nil {
		return borderResponse{Status: statusError, Detail: err.Error()}
	}
	var req borderRequest
	if err := decMode.Unmarshal(in, &req); err != nil {
		return borderResponse{Status: statusRefused, Detail: "malformed request"}
	}
	switch req.Op {
	case opExport:
		rec, err := ParseRecord(req.Record)
		if err == nil {
			_, err = f.cfg.Local.verifier.Verify(rec)
		}
		if err != nil {
			f.log.Info("export refused", logging.Reason(refusalReason(err)), zap.Error(err))
			return borderResponse{Status: statusRefused, Detail: err.Error()}
		}
		if err := f.announce(ctx, rec); err != nil {
			return borderResponse{Status: statusError, Detail: err.Error()}
		}
		return borderResponse{Status: statusOK}
	case opLookup:
		var name pdu.Name
		if len(req.Name) != len(name) {
			return borderResponse{Status: statusRefused, Detail: "bad name"}
		}
		copy(name[:], req.Name)
		rec, err := f.cfg.Global.Lookup(ctx, name)
		if errors.Is(err, ErrNotFound) {
			return borderResponse{Status: statusNotFound}
		}
		if err != nil {
			return borderResponse{Status: statusError, Detail: err.Error()}
		}
		return borderResponse{Status: statusOK, Record: rec.Bytes()}
	}
	return borderResponse{Status: statusRefused, Detail: fmt.Sprintf("unknown op %d", req.Op)}
}
