package client

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/gdpnet/gdpnet/pdu"
)

// Reply is the answer to one probe.
type Reply struct {
	// From is who answered: the destination for an echo reply, the
	// reporting router for a NAK.
	From pdu.Name
	// Reached is true for an ECHO_REPLY from the destination.
	Reached bool
	// Code is the NAK code when not Reached.
	Code pdu.Code
	RTT  time.Duration
}

// Probe sends one ECHO_REQUEST to dst with the given TTL and waits for the
// echo reply or a NAK. A timeout is ErrTimeout.
func (c *Client) Probe(ctx context.Context, dst pdu.Name, ttl uint8, size int, timeout time.Duration) (Reply, error) {
	payload := make([]byte, max(size, 8))
	_, _ = rand.Read(payload)
	start := time.Now()
	m, err := c.exchange(ctx, pdu.Header{Type: pdu.TypeEchoRequest, TTL: ttl, Dst: dst, Src: c.id.Name, Payload: payload}, timeout)
	if err != nil {
		return Reply{}, err
	}
	rep := Reply{From: m.Src, RTT: time.Since(start)}
	switch m.Type {
	case pdu.TypeEchoReply:
		rep.Reached = true
	case pdu.TypeNAK:
		rep.Code = m.Code
	default:
		return rep, fmt.Errorf("client: unexpected %s answering a probe", m.Type)
	}
	return rep, nil
}

// Ping sends one ECHO_REQUEST with the client's default TTL. A NAK is
// returned as a *NAKError.
func (c *Client) Ping(ctx context.Context, dst pdu.Name, size int, timeout time.Duration) (Reply, error) {
	rep, err := c.Probe(ctx, dst, c.opts.TTL, size, timeout)
	if err != nil {
		return rep, err
	}
	if !rep.Reached {
		return rep, &NAKError{Code: rep.Code, Reporter: rep.From}
	}
	return rep, nil
}

// Hop is one line of a traceroute.
type Hop struct {
	TTL     uint8
	Reply   Reply
	Timeout bool
}

// Traceroute probes dst with TTL 0, 1, 2, … : the router where the TTL runs
// out answers TTL_EXPIRED with its name, and the destination answers with
// an echo reply. It stops at the destination, at any other NAK, or after
// maxHops probes.
func (c *Client) Traceroute(ctx context.Context, dst pdu.Name, maxHops int, timeout time.Duration, each func(Hop)) ([]Hop, error) {
	var hops []Hop
	for ttl := 0; ttl < maxHops && ttl < 256; ttl++ {
		rep, err := c.Probe(ctx, dst, uint8(ttl), 8, timeout)
		h := Hop{TTL: uint8(ttl), Reply: rep}
		if errors.Is(err, ErrTimeout) {
			h.Timeout = true
		} else if err != nil {
			return hops, err
		}
		hops = append(hops, h)
		if each != nil {
			each(h)
		}
		if !h.Timeout && (rep.Reached || rep.Code != pdu.CodeTTLExpired) {
			return hops, nil
		}
	}
	return hops, nil
}
