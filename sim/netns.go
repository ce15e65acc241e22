package sim

import (
	"context"
	"fmt"
	"net"
	"net/netip"
)

// Modes of running a topology.
const (
	// ModeInProcess runs every node in this process over the emulated
	// underlay (no root).
	ModeInProcess = "inprocess"
	// ModeNetns runs every router as a real `gdp router` process in its
	// own network namespace, joined to the others through veth pairs and
	// the same link emulator (root; Linux).
	ModeNetns = "netns"
)

// Netns names: every namespace of a run is NetnsPrefix + run + "-" +
// node (the hub: run + "-hub"), every veth VethPrefix + run + h|n + index,
// and a run's state file is StateDir/run.json.
const (
	NetnsPrefix = "gdpsim-"
	VethPrefix  = "gds"
	StateDir    = "/run/gdpnet-sim"
)

// mode is the run's mode: Options.Mode, else the topology's, else
// in-process.
func (s *Sim) mode() string {
	switch {
	case s.opts.Mode != "":
		return s.opts.Mode
	case s.top.Mode != "":
		return s.top.Mode
	}
	return ModeInProcess
}

// buildFor builds the topology in the run's mode.
func (s *Sim) buildFor(ctx context.Context) error {
	switch m := s.mode(); m {
	case ModeInProcess:
		return s.build(ctx)
	case ModeNetns:
		return s.buildNetns(ctx)
	default:
		return fmt.Errorf("unknown mode %q (known: %s, %s)", m, ModeInProcess, ModeNetns)
	}
}

// listenUDP opens a UDP socket at a node's address: on the emulated
// underlay in-process, a kernel socket inside the node's namespace in
// netns mode.
func (s *Sim) listenUDP(n *simNode, port uint16, queue int) (net.PacketConn, error) {
	if s.ns != nil {
		return s.ns.listen(n, port)
	}
	c, err := s.net.Listen(netip.AddrPortFrom(n.addr, port), queue)
	if err != nil {
		return nil, err
	}
	return c, nil
}
