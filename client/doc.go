// Package client is the Go SDK every gdpnet endpoint shares — capsule
// servers, clients, gateways and handoff agents. This part covers
// attachment: given an authenticated tunnel to a router, a Client
// advertises names with their certificate chains (issuing its own RtCert
// for that router), keeps them advertised before they expire, withdraws
// them, sends and receives PDUs, answers pings for the names it holds, and
// runs ping and traceroute probes.
//
// Capsule readers and writers and the CAAPIs are built on top of Client
// (Send, Receive and the per-sequence reply matching) by other files.
package client
