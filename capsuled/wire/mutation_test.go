package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/gdpnet/gdpnet/pdu"
)

// The tests in this file each kill mutants that survived the rest of the
// package's tests (docs/SECURITY.md, "Mutation sweep").

// TestValidateLimits: every bound of Validate at its limit and one beyond
// (mutants: each case skipped, > ↔ >= and < ↔ <= at each limit).
func TestValidateLimits(t *testing.T) {
	name := make([]byte, 32)
	n := func(k int, each []byte) [][]byte {
		out := make([][]byte, k)
		for i := range out {
			out[i] = each
		}
		return out
	}
	segs := func(k, recs int) []Segment {
		out := make([]Segment, k)
		for i := range out {
			out[i] = Segment{Records: n(recs, []byte{1}), Heartbeat: []byte{1}}
		}
		return out
	}
	tests := []struct {
		name string
		m    Message
		ok   bool
	}{
		{"a read", Message{Op: OpRead, ID: 1, Capsule: name}, true},
		{"unknown op with a capsule", Message{Op: 99, ID: 1, Capsule: name}, false},
		{"MaxRecords records", Message{Op: OpAppend, ID: 1, Capsule: name, Records: n(MaxRecords, nil)}, true},
		{"MaxRecords+1 records", Message{Op: OpAppend, ID: 1, Capsule: name, Records: n(MaxRecords+1, nil)}, false},
		{"MaxSegments segments", Message{Op: OpSync, ID: 1, Capsule: name, Segments: segs(MaxSegments, 0)}, true},
		{"MaxSegments+1 segments", Message{Op: OpSync, ID: 1, Capsule: name, Segments: segs(MaxSegments+1, 0)}, false},
		{"a segment of MaxRecords", Message{Op: OpSync, ID: 1, Capsule: name, Segments: segs(1, MaxRecords)}, true},
		{"a segment of MaxRecords+1", Message{Op: OpSync, ID: 1, Capsule: name, Segments: segs(1, MaxRecords+1)}, false},
		{"MaxReplicas replicas, w of as many", Message{Op: OpCreate, ID: 1, Replicas: n(MaxReplicas, name), W: MaxReplicas}, true},
		{"MaxReplicas+1 replicas", Message{Op: OpCreate, ID: 1, Replicas: n(MaxReplicas+1, name)}, false},
		{"w above MaxReplicas", Message{Op: OpCreate, ID: 1, Replicas: n(2, name), W: MaxReplicas + 1}, false},
		{"a short replica name", Message{Op: OpCreate, ID: 1, Replicas: n(1, name[:31])}, false},
		{"status 100", Message{Op: OpRead, ID: 1, Status: 100}, true},
		{"status 99", Message{Op: OpRead, ID: 1, Status: 99}, false},
		{"status 599", Message{Op: OpRead, ID: 1, Status: 599}, true},
		{"status 600", Message{Op: OpRead, ID: 1, Status: 600}, false},
		{"time 2^63-1", Message{Op: OpRead, ID: 1, Capsule: name, Time: 1<<63 - 1}, true},
		{"time 2^63", Message{Op: OpRead, ID: 1, Capsule: name, Time: 1 << 63}, false},
		{"error text of 1024 bytes", Message{Op: OpRead, ID: 1, Status: 500, Error: string(make([]byte, 1024))}, true},
		{"error text of 1025 bytes", Message{Op: OpRead, ID: 1, Status: 500, Error: string(make([]byte, 1025))}, false},
		{"a 64-byte signature", Message{Op: OpRead, ID: 1, Capsule: name, Signature: make([]byte, 64)}, true},
		{"a 63-byte signature", Message{Op: OpRead, ID: 1, Capsule: name, Signature: make([]byte, 63)}, false},
		{"a frontier of 64", Message{Op: OpRead, ID: 1, Capsule: name, Frontier: n(64, name)}, true},
		{"a frontier of 65", Message{Op: OpRead, ID: 1, Capsule: name, Frontier: n(65, name)}, false},
		{"a short frontier hash", Message{Op: OpRead, ID: 1, Capsule: name, Frontier: n(1, name[:31])}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.m.Validate()
			if tt.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
	// MaxMessage bytes is not too large (it is not a message either).
	if _, err := Unmarshal(make([]byte, MaxMessage)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("MaxMessage bytes: got %v, want ErrMalformed", err)
	}
}

// TestReadFrameBounds: a frame of length 0 or above MaxMessage is refused
// before anything is read; one of MaxMessage is read (and found short); a
// truncated body is reported as such (mutants: n == 0 dropped, > ↔ >=,
// the body's read error ignored).
func TestReadFrameBounds(t *testing.T) {
	frame := func(n uint32, body []byte) io.Reader {
		return bytes.NewReader(append(binary.BigEndian.AppendUint32(nil, n), body...))
	}
	if _, err := ReadFrame(frame(0, nil)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("length 0: %v", err)
	}
	if _, err := ReadFrame(frame(MaxMessage+1, nil)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("length MaxMessage+1: %v", err)
	}
	if _, err := ReadFrame(frame(MaxMessage, nil)); !errors.Is(err, io.EOF) {
		t.Errorf("length MaxMessage, no body: %v, want EOF", err)
	}
	if _, err := ReadFrame(frame(10, []byte{0xa1, 0x01})); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated body: %v, want unexpected EOF", err)
	}
}

// TestDeliverNAKMatchesDestination: a router's NAK is handed to a waiter
// only about a copy the request was sent to: a NAK naming another
// destination (a router reporting on a node never asked, to fail a
// request early) is refused, as is one for an unknown id or one beyond the
// buffer (mutants: the whole check skipped, either operand dropped, the
// destination check forced true, > 0 → >= 0).
func TestDeliverNAKMatchesDestination(t *testing.T) {
	p := NewPending()
	asked, other, router := pdu.Name{1}, pdu.Name{2}, pdu.Name{9}
	id, ch, err := p.Add(OpRead, 1, asked)
	if err != nil {
		t.Fatal(err)
	}
	if p.DeliverNAK(id, other, pdu.CodeNoRoute, router) {
		t.Fatal("a NAK about a node not asked was delivered")
	}
	if p.DeliverNAK(id+1, asked, pdu.CodeNoRoute, router) {
		t.Fatal("a NAK for an unknown id was delivered")
	}
	if !p.DeliverNAK(id, asked, pdu.CodeNoRoute, router) {
		t.Fatal("a NAK about the node asked was refused")
	}
	if p.DeliverNAK(id, asked, pdu.CodeNoRoute, router) {
		t.Fatal("a NAK beyond the buffer was delivered")
	}
	if r := <-ch; r.From != asked || r.NAK != pdu.CodeNoRoute || r.Reporter != router {
		t.Fatalf("got %+v", r)
	}
	// No destination named (anycast to a capsule's name): any copy.
	anyID, _, _ := p.Add(OpMetadata, 1)
	if !p.DeliverNAK(anyID, other, pdu.CodeNoRoute, router) {
		t.Fatal("anycast: NAK refused")
	}
}

// TestMarshalValidates: an invalid message is not encoded nor framed, and
// nothing is written (mutants: Marshal's Validate and WriteFrame's Marshal
// errors ignored).
func TestMarshalValidates(t *testing.T) {
	m := &Message{Op: OpRead, ID: 1, Capsule: make([]byte, 31)}
	if _, err := m.Marshal(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Marshal: got %v, want ErrMalformed", err)
	}
	var buf bytes.Buffer
	if err := WriteFrame(&buf, m); !errors.Is(err, ErrMalformed) || buf.Len() != 0 {
		t.Fatalf("WriteFrame: got %v and %d bytes written", err, buf.Len())
	}
}
