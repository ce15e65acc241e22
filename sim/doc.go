// Package sim is gdpnet's network simulator: Mininet-style experiments on
// the real router, resolver and client code.
//
// A Topology (from one YAML file, Parse, or the Go API, New) names nodes —
// routers, capsule servers, clients — in trust domains, the links between
// them with their bandwidth, delay, jitter, loss, MTU and queue, and what to
// do: workloads (pings and PDU streams by name, capsule appends and reads),
// failures (node crash and restart, link cut and restore, partition and
// heal) and what to measure. Builtin makes the standard shapes (linear,
// star, tree, ring, grid, Waxman, edge/cloud).
//
// Run starts every node in this process over a sim/linkem underlay — the
// links are emulated in Go, packet by packet — and returns Results: per
// workload delivery and latency percentiles, per link bytes and drops,
// convergence after failures, and a one-line summary in the spirit of
// Mininet's "Results: 0% dropped (90/90 received)". docs/SIMULATOR.md is the
// guide.
package sim
