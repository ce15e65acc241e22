// Package gateway is the local GDP gateway (`gdp gateway`): a process on
// the user's machine that holds the user's keys, keeps an uplink to one of
// several edge routers (re-attaching to another when the one in use fails;
// the gateway's names follow it), and serves local applications an
// HTTP/JSON API — capsules, records (single and NDJSON batch appends, reads
// by seqno, range and time) and WebSocket subscriptions that resume from a
// seqno with no gap and no duplicate — on a unix socket (mode 0600) and,
// optionally, on a loopback TCP port that wants a bearer token.
//
// The API is described by the OpenAPI 3 document openapi.json (served at
// /openapi.json, shipped as docs/openapi.json); docs/GATEWAY.md is the
// developer's guide and the security model.
package gateway
