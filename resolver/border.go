package resolver

import (
	"context"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

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
	out, err := codec.Marshal(req)
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
	if err := codec.Unmarshal(in, &resp); err != nil {
		return nil, fmt.Errorf("border response: %w: %v", ErrMalformed, err)
	}
	return &resp, nil
}

// handleBorder serves export and lookup requests from the domain's nodes
// (only admitted members reach it: DHT.gated wraps it).
func (f *Federated) handleBorder(s network.Stream) {
	defer s.Close()
	local := f.cfg.Local
	ctx, cancel := context.WithTimeout(local.ctx, local.cfg.PutTimeout)
	defer cancel()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	resp := f.serve(ctx, s)
	out, err := codec.Marshal(resp)
	if err == nil {
		_, err = s.Write(out)
	}
	if err != nil {
		s.Reset()
	}
}

func (f *Federated) serve(ctx context.Context, s network.Stream) borderResponse {
	local := f.cfg.Local
	in, err := readAllLimited(s, MaxRecordSize+256)
	if err != nil {
		return borderResponse{Status: statusError, Detail: err.Error()}
	}
	var req borderRequest
	if err := codec.Unmarshal(in, &req); err != nil {
		return borderResponse{Status: statusRefused, Detail: "malformed request"}
	}
	switch req.Op {
	case opExport:
		rec, err := ParseRecord(req.Record)
		if err == nil {
			_, err = f.cfg.Local.verifier.Verify(rec)
		}
		if err != nil {
			reason := refusalReason(err)
			local.metrics.refused.WithLabelValues(reason).Inc()
			local.logLim.Info(f.log, reason, "export refused", logging.Reason(reason), zap.Error(err))
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
