package sim

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"
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

// NetnsTimerSlack is the timer slack of the netns mode's router processes
// (Options.RouterTimerSlack; the kernel's default is 50µs): a simulator
// setting, not a router default. With it the kernel may wake a sleeping
// router thread up to 5 ms late, batching wakeups. What it saves: the Go
// runtime's monitor thread (sysmon) sleeps 20µs at a time while a process
// is busy after an idle spell (each packet burst, each syscall after an
// idle spell wakes it); with a hundred routers on two cores those wakeups,
// a context switch each, were a fifth of the routers' CPU (SIMULATOR.md
// §8). Measured at 56 routers: a router's CPU 0.37 s against 0.51 s, idle
// context switches 64 against 119 a second (1 ms saved less, 20 ms no
// more). A router's forwarding is driven by its sockets, not by timers,
// so the link figures are unchanged (TestNetnsFidelity); its timers
// (QUIC's, housekeeping) fire up to 5 ms late.
const NetnsTimerSlack = 5 * time.Millisecond

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
