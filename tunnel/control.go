package tunnel

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Every bidirectional QUIC stream starts with one byte saying what it is.
const (
	streamControl byte = 0x01 // the link's control stream, opened by the dialer
	streamBulk    byte = 0x02 // a bulk stream from OpenStream
)

// Control message types (docs/PROTOCOL.md §4.3).
const (
	msgHello    byte = 0x01 // dialer → listener: kind, dialer's session index, epoch 0, raw port, MTU
	msgAccept   byte = 0x02 // listener → dialer: listener's session index, raw port, MTU
	msgReady    byte = 0x03 // dialer → listener: keys installed, link is up
	msgRefuse   byte = 0x04 // listener → dialer: code says why
	msgRekey    byte = 0x05 // dialer → listener: new dialer index, next epoch
	msgRekeyAck byte = 0x06 // listener → dialer: new listener index
	msgRekeyEnd byte = 0x07 // dialer → listener: switch sending to the new epoch
	// msgRenew (gdp-tunnel/2 only): either side, any time after READY: the
	// sender's renewed credentials follow, index = their length.
	msgRenew byte = 0x08
)

// Refuse codes.
const (
	refuseNoRaw byte = 1 // KindRaw asked, listener has no raw socket
	refuseKind  byte = 2 // unknown kind
	refuseBusy  byte = 3 // accept queue full
)

// ctrlLen is the fixed size of every control message.
const ctrlLen = 16

// ctrlMsg is one control message:
//
//	type u8 | arg u8 | reserved u16 (0) | index u32 | epoch u32 | raw port u16 | mtu u16
//
// arg is the Kind in a hello and the code in a refusal.
type ctrlMsg struct {
	Type  byte
	Arg   byte
	Index uint32
	Epoch uint32
	Port  uint16
	MTU   uint16
}

func (m ctrlMsg) encode() [ctrlLen]byte {
	var b [ctrlLen]byte
	b[0], b[1] = m.Type, m.Arg
	binary.BigEndian.PutUint32(b[4:], m.Index)
	binary.BigEndian.PutUint32(b[8:], m.Epoch)
	binary.BigEndian.PutUint16(b[12:], m.Port)
	binary.BigEndian.PutUint16(b[14:], m.MTU)
	return b
}

func decodeCtrl(b [ctrlLen]byte) (ctrlMsg, error) {
	m := ctrlMsg{
		Type:  b[0],
		Arg:   b[1],
		Index: binary.BigEndian.Uint32(b[4:]),
		Epoch: binary.BigEndian.Uint32(b[8:]),
		Port:  binary.BigEndian.Uint16(b[12:]),
		MTU:   binary.BigEndian.Uint16(b[14:]),
	}
	if m.Type < msgHello || m.Type > msgRenew || b[2] != 0 || b[3] != 0 {
		return m, fmt.Errorf("%w: bad control message % x", ErrProtocol, b[:4])
	}
	return m, nil
}

func writeCtrl(w io.Writer, m ctrlMsg) error {
	b := m.encode()
	_, err := w.Write(b[:])
	return err
}

func readCtrl(r io.Reader) (ctrlMsg, error) {
	var b [ctrlLen]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return ctrlMsg{}, err
	}
	return decodeCtrl(b)
}

// expect reads one message and insists on its type.
func expect(r io.Reader, typ byte) (ctrlMsg, error) {
	m, err := readCtrl(r)
	if err != nil {
		return m, err
	}
	if m.Type == msgRefuse && typ != msgRefuse {
		return m, fmt.Errorf("%w: peer refused the link (code %d)", ErrPeerRefused, m.Arg)
	}
	if m.Type != typ {
		return m, fmt.Errorf("%w: got control message %d, want %d", ErrProtocol, m.Type, typ)
	}
	return m, nil
}
