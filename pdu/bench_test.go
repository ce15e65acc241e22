package pdu

import (
	"encoding/binary"
	"testing"
)

// benchPDU is a typical DATA PDU: no options, a 1,200-byte payload (one QUIC
// datagram's worth).
func benchPDU(b *testing.B) []byte {
	h := Header{Type: TypeData, TTL: DefaultTTL, Sequence: 1, Dst: testDst, Src: testSrc, Payload: make([]byte, 1200)}
	raw, err := h.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "PDUs/s")
}

// BenchmarkDecode measures Decode, which is decode and validate in one pass
// (every field is checked). It must stay at or above 20 M PDUs/s on one core
// with no allocation. No bytes/s is reported: Decode copies no payload.
func BenchmarkDecode(b *testing.B) {
	raw := benchPDU(b)
	var h Header
	b.ReportAllocs()
	for b.Loop() {
		if err := Decode(raw, &h); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

// BenchmarkDecodeUnchecked is the baseline for BenchmarkDecode: the same
// fields copied out with no validation at all. The difference is what the
// checks cost.
func BenchmarkDecodeUnchecked(b *testing.B) {
	raw := benchPDU(b)
	var h Header
	b.ReportAllocs()
	for b.Loop() {
		decodeUnchecked(raw, &h)
	}
	reportRate(b)
}

//go:noinline
func decodeUnchecked(b []byte, h *Header) {
	hl := int(b[1]) * 4
	h.Type = Type(b[2])
	h.TTL = b[3]
	h.Flags = Flags(b[4])
	h.Code = Code(b[5])
	h.Sequence = binary.BigEndian.Uint32(b[8:12])
	h.Dst = Name(b[12:44])
	h.Src = Name(b[44:76])
	h.Options = b[HeaderLen:hl]
	h.Payload = b[hl:]
}

// BenchmarkAppend measures encoding into a reused buffer.
func BenchmarkAppend(b *testing.B) {
	raw := benchPDU(b)
	var h Header
	if err := Decode(raw, &h); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, len(raw))
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		var err error
		if buf, err = h.Append(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

// BenchmarkAppendCopy is the baseline for BenchmarkAppend: copying the same
// number of bytes into the reused buffer.
func BenchmarkAppendCopy(b *testing.B) {
	raw := benchPDU(b)
	buf := make([]byte, 0, len(raw))
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		buf = append(buf[:0], raw...)
	}
	reportRate(b)
}

// BenchmarkNAK measures building and encoding a NAK (one allocation for the
// echoed bytes, which must outlive the receive buffer).
func BenchmarkNAK(b *testing.B) {
	raw := benchPDU(b)
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		n, ok := NAK(raw, CodeNoRoute, testDst)
		if !ok {
			b.Fatal("NAK refused")
		}
		var err error
		if buf, err = n.Append(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}
