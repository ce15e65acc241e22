package tunnel

import "errors"

// Errors callers branch on.
var (
	// ErrClosed: the link or endpoint is closed.
	ErrClosed = errors.New("tunnel: closed")
	// ErrTooBig: a PDU is empty or longer than MaxPDU.
	ErrTooBig = errors.New("tunnel: pdu size out of range")
	// ErrPeerRefused: the peer's certificate or credentials did not prove
	// the expected, trusted name (returned from Dial, wrapped).
	ErrPeerRefused = errors.New("tunnel: peer refused")
	// ErrWrongPeer: the peer proved a different name than the dialer
	// expected.
	ErrWrongPeer = errors.New("tunnel: peer is not the expected name")
	// ErrNoRaw: a raw link was asked for but an endpoint has no raw socket.
	ErrNoRaw = errors.New("tunnel: raw transport not available")
	// ErrBusy: TrySend found the raw send queue full; the PDU was not
	// sent (Send would have waited).
	ErrBusy = errors.New("tunnel: raw send queue full")
	// ErrProtocol: the peer broke the control protocol.
	ErrProtocol = errors.New("tunnel: control protocol violation")
)
