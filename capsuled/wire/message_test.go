package wire

import (
	"github.com/gdpnet/gdpnet/pdu"
	"unicode/utf8"

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
		{"short sync nonce", encodeUnchecked(&Message{Op: OpSync, ID: 1, Capsule: name, From: 1, Hash: name[:16]}), ErrMalformed},
		{"long sync nonce", encodeUnchecked(&Message{Op: OpSync, ID: 1, Capsule: name, From: 1, Hash: append(name, 0)}), ErrMalformed},
		{"short possession tag", encodeUnchecked(&Message{Op: OpSync, ID: 1, Status: StatusOK, Capsule: name, Head: 1, Possession: name[:31]}), ErrMalformed},
		{"long possession tag", encodeUnchecked(&Message{Op: OpSync, ID: 1, Status: StatusOK, Capsule: name, Head: 1, Possession: make([]byte, 64)}), ErrMalformed},
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

func TestPendingMatchesBySourceAndID(t *testing.T) {
	p := NewPending()
	asked, other := pdu.Name{1}, pdu.Name{2}
	id, ch, err := p.Add(OpRead, 2, asked)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Deliver(asked, &Message{Op: OpRead, ID: id + 1, Status: StatusOK}); !errors.Is(err, ErrUnsolicited) {
		t.Fatalf("wrong id: %v", err)
	}
	// The right id from a node that was not asked, or for another
	// operation, is refused: knowing (or guessing) an id is not enough.
	if err := p.Deliver(other, &Message{Op: OpRead, ID: id, Status: StatusOK}); !errors.Is(err, ErrWrongSource) {
		t.Fatalf("wrong source: %v", err)
	}
	if err := p.Deliver(asked, &Message{Op: OpSync, ID: id, Status: StatusOK}); !errors.Is(err, ErrWrongSource) {
		t.Fatalf("wrong op: %v", err)
	}
	if err := p.Deliver(asked, &Message{Op: OpRead, ID: id, Status: StatusOK}); err != nil {
		t.Fatalf("not delivered: %v", err)
	}
	if r := <-ch; r.From != asked {
		t.Fatalf("from %v", r.From)
	}
	p.Done(id)
	if err := p.Deliver(asked, &Message{Op: OpRead, ID: id, Status: StatusOK}); !errors.Is(err, ErrUnsolicited) {
		t.Fatalf("delivered after Done: %v", err)
	}
	// No source named: any node may answer (a request to a capsule's name).
	any, _, _ := p.Add(OpMetadata, 1)
	if err := p.Deliver(other, &Message{Op: OpMetadata, ID: any, Status: StatusOK}); err != nil {
		t.Fatalf("anycast answer: %v", err)
	}
	p.Close()
	if _, _, err := p.Add(OpRead, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("add after close: %v", err)
	}
}

// TestPendingIDsUnpredictable: consecutive ids are not a counter, and two
// tables do not share a sequence, so one observed id does not give the
// next (an attacker forging answers must guess 64 bits).
func TestPendingIDsUnpredictable(t *testing.T) {
	a, b := NewPending(), NewPending()
	seen := map[uint64]bool{}
	var prev uint64
	near := 0
	for i := 0; i < 1000; i++ {
		id, _, _ := a.Add(OpAppend, 1)
		if seen[id] {
			t.Fatalf("id %d repeated", id)
		}
		seen[id] = true
		if d := id - prev; i > 0 && (d < 1<<20 || -d < 1<<20) {
			near++
		}
		prev = id
		a.Done(id)
	}
	if near > 1 {
		t.Fatalf("%d of 1000 ids within 2^20 of the previous one: ids are sequential", near)
	}
	for i := 0; i < 100; i++ {
		id, _, _ := b.Add(OpAppend, 1)
		if seen[id] {
			t.Fatalf("second table repeats the first one's id %d", id)
		}
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
	// A hostile server's reason reaches terminals and logs: no control
	// characters (a terminal escape, a newline faking a log line), no
	// invalid UTF-8, and bounded.
	hostile := "disk full\x1b]0;owned\a\nlevel=error msg=fake\xff" + strings.Repeat("é", 400)
	msg := (&Message{Op: OpAppend, Status: StatusUnavailable, Error: hostile}).Err().Error()
	if strings.ContainsAny(msg, "\x1b\a\n") || !utf8.ValidString(msg) || len(msg) > 2*maxReasonShown || !strings.Contains(msg, "disk full") {
		t.Fatalf("server's reason shown as %q", msg)
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
