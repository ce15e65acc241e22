package tunnel

import (
	"context"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlog"
	"github.com/quic-go/quic-go/qlogwriter"
)

// datagramDrops is a quic-go connection tracer that counts the datagrams
// quic-go itself discards, which it otherwise only writes to a debug log:
// those arriving while its receive queue (128 datagrams, fixed) is full —
// the link's reader, on a busy machine or behind a flood, fell behind —
// and those queued for sending that no longer fit a packet. A PDU lost
// there was lost silently before (Session 16: one honest request in a few
// hundred under a flood on a loaded machine). Set only with
// Config.CountDatagramDrops: it costs an event per packet.
type datagramDrops struct{ c *counters }

func (e *Endpoint) connTracer(context.Context, bool, quic.ConnectionID) qlogwriter.Trace {
	return datagramDrops{&e.stats}
}

func (d datagramDrops) AddProducer() qlogwriter.Recorder { return d }

// SupportsSchemas: none, so that nothing asks this trace for more than
// quic-go's own events.
func (datagramDrops) SupportsSchemas(string) bool { return false }

func (d datagramDrops) RecordEvent(ev qlogwriter.Event) {
	if dd, ok := ev.(qlog.DatagramDropped); ok {
		if dd.Direction == qlog.DirectionSending {
			d.c.drop(DropDatagramTooLarge)
		} else {
			d.c.drop(DropDatagramQueue)
		}
	}
}

func (datagramDrops) Close() error { return nil }
