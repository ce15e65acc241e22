// Package advert is the wire format of the attachment control payloads —
// ADVERTISE, WITHDRAW and ADVERTISE_RESULT (docs/PROTOCOL.md §5): the
// message types, the per-name statuses, a deterministic encoder and a strict
// decoder. Routers (package router) and endpoints (package client) share
// these bytes without either depending on the other; the checks a router
// makes on what it decodes live in router/advertise.go.
//
// testdata/control_vectors.txt holds the golden vectors quoted in
// PROTOCOL.md §5.7.
package advert
