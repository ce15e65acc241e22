package wire

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestUnmarshalRefuses(t *testing.T) {
	name := make([]byte, 32)
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"not a map", []byte{0x01}, ErrMalformed},
		{"unknown op", mustHex("a2011863" + "0201"), ErrMalformed},
		{"unknown key", mustHex("a3010602011863" + "00"), ErrMalformed},
		{"non-canonical int", mustHex("a2011806" + "0201"), ErrMalformed},
		{"indefinite map", mustHex("bf01060201ff"), ErrMalformed},
		{"short capsule name", encodeUnchecked(&Message{Op: OpRead, ID: 1, Capsule: name[:31]}), ErrMalformed},
		{"bad status", encodeUnchecked(&Message{Op: OpRead, ID: 1, Status: 42, Capsule: name}), ErrMalformed},
		{"request without capsule", encodeUnchecked(&Message{Op: OpRead, ID: 1}), ErrMalformed},
		{"too large", make([]byte, MaxMessage+1), ErrTooLarge},
		{"segment without heartbeat", encodeUnchecked(&Message{Op: OpSync, ID: 1, Capsule: name, Segments: []Segment{{Records: [][]byte{{1}}}}}), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Unmarshal(tt.in); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestMarshalTooLarge(t *testing.T) {
	m := &Message{Op: OpAppend, ID: 1, Capsule: make([]byte, 32), Records: [][]byte{make([]byte, MaxMessage)}, Heartbeat: []byte{1}}
	if _, err := m.Marshal(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v", err)
	}
}

func TestPendingMatchesByID(t *testing.T) {
	p := NewPending()
	id, ch, err := p.Add(2)
	if err != nil {
		t.Fatal(err)
	}
	if p.Deliver([32]byte{1}, &Message{Op: OpRead, ID: id + 1, Status: StatusOK}) {
		t.Fatal("delivered to the wrong id")
	}
	if !p.Deliver([32]byte{1}, &Message{Op: OpRead, ID: id, Status: StatusOK}) {
		t.Fatal("not delivered")
	}
	if r := <-ch; r.From != ([32]byte{1}) {
		t.Fatalf("from %v", r.From)
	}
	p.Done(id)
	if p.Deliver([32]byte{1}, &Message{Op: OpRead, ID: id, Status: StatusOK}) {
		t.Fatal("delivered after Done")
	}
	p.Close()
	if _, _, err := p.Add(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("add after close: %v", err)
	}
}

func TestStatusError(t *testing.T) {
	m := &Message{Op: OpAppend, Status: StatusUnauthorized, Error: "bad heartbeat signature"}
	err := m.Err()
	var se *StatusError
	if !errors.As(err, &se) || se.Status != StatusUnauthorized || !strings.Contains(err.Error(), "unauthorized") {
		t.Fatalf("%v", err)
	}
	if (&Message{Op: OpCreate, Status: StatusCreated}).Err() != nil {
		t.Fatal("created is an error")
	}
	_ = time.Second
}

func encodeUnchecked(m *Message) []byte {
	b, err := codec.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func mustHex(s string) []byte {
	b := make([]byte, len(s)/2)
	for i := range b {
		var v byte
		for _, c := range s[2*i : 2*i+2] {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= byte(c - '0')
			default:
				v |= byte(c-'a') + 10
			}
		}
		b[i] = v
	}
	return b
}
