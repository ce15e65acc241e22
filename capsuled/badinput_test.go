package capsuled_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/router"
)

// rawUser sends hand-made capsule messages and reads the answers.
type rawUser struct {
	t  *testing.T
	c  *client.Client
	id uint64
}

func (w *world) rawUser(n *router.Node) *rawUser {
	id, err := certs.NewIdentity(certs.KindClient, "raw user")
	if err != nil {
		w.t.Fatal(err)
	}
	c, ep, _ := w.attach(n, id, 1024)
	w.t.Cleanup(func() { _ = c.Close(); _ = ep.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Advertise(ctx, c.Self()); err != nil {
		w.t.Fatal(err)
	}
	return &rawUser{t: w.t.(*testing.T), c: c}
}

// do sends m to dst and returns the answer with m's id.
func (u *rawUser) do(dst pdu.Name, m *wire.Message) *wire.Message {
	u.t.Helper()
	u.id++
	m.ID = u.id
	b, err := m.Marshal()
	if err != nil {
		u.t.Fatal(err)
	}
	if _, err := u.c.Send(dst, b); err != nil {
		u.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for {
		in, err := u.c.Receive(ctx)
		if err != nil {
			u.t.Fatalf("%s: no answer: %v", m.Op, err)
		}
		resp, err := wire.Unmarshal(in.Payload)
		if err == nil && resp.ID == m.ID && resp.IsResponse() {
			return resp
		}
	}
}

func appendMsg(c pdu.Name, recs []capsule.Record, hb *capsule.Heartbeat) *wire.Message {
	m := &wire.Message{Op: wire.OpAppend, Capsule: c[:], Heartbeat: hb.Marshal()}
	for _, r := range recs {
		m.Records = append(m.Records, r.Marshal())
	}
	return m
}

// TestBadInput sends a server every kind of bad APPEND and checks the
// status, the reason, and that nothing was stored.
func TestBadInput(t *testing.T) {
	w := newWorld(t)
	r1 := w.router("r1")
	srv := w.newReplica(r1, "server")
	admin := w.user(r1, "admin")
	tc := newTestCapsule(t, "bad input")
	tc.create(t, admin, 1, srv)
	c := tc.meta.Name()
	u := w.rawUser(r1)

	// A good first batch: records 1..3.
	good := capsule.NewWriter(c, tc.writer.Key)
	for i := range 3 {
		good.Append([]byte{byte(i)})
	}
	recs, hb1 := good.Flush()
	if resp := u.do(srv.id.Name, appendMsg(c, recs, hb1)); resp.Status != wire.StatusOK || resp.Head != 3 {
		t.Fatalf("good append: %v %q head %d", resp.Status, resp.Error, resp.Head)
	}
	good.Append([]byte("four"))
	recs4, hb2 := good.Flush()
	if resp := u.do(srv.id.Name, appendMsg(c, recs4, hb2)); resp.Status != wire.StatusOK {
		t.Fatalf("second append: %v %q", resp.Status, resp.Error)
	}

	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	tamper := func() *wire.Message {
		w := forkFrom(c, good, tc.writer.Key)
		w.Append([]byte("five"))
		recs, hb := w.Flush()
		m := appendMsg(c, recs, hb)
		m.Records[0][len(m.Records[0])-1] ^= 1 // flip a data bit
		return m
	}
	wrongKey := func() *wire.Message {
		w := forkFrom(c, good, otherKey)
		w.Append([]byte("five"))
		recs, hb := w.Flush()
		return appendMsg(c, recs, hb)
	}
	gap := func() *wire.Message {
		w := forkFrom(c, good, tc.writer.Key)
		w.Append([]byte("five"))
		w.Append([]byte("six"))
		w.Append([]byte("seven"))
		recs, hb := w.Flush()
		return appendMsg(c, []capsule.Record{recs[0], recs[2]}, hb) // seqno 6 missing, no hole declared
	}
	gapAtStart := func() *wire.Message {
		w := forkFrom(c, good, tc.writer.Key)
		w.Append([]byte("five"))
		w.Append([]byte("six"))
		recs, hb := w.Flush()
		return appendMsg(c, recs[1:], hb) // seqno 5 missing
	}
	oversized := func() *wire.Message {
		w := forkFrom(c, good, tc.writer.Key)
		w.Append(make([]byte, wire.MaxRecordData+1))
		recs, hb := w.Flush()
		m := appendMsg(c, recs, hb)
		return m
	}
	unknown := func() *wire.Message {
		other := newTestCapsule(t, "never created")
		w := capsule.NewWriter(other.meta.Name(), other.writer.Key)
		w.Append([]byte("x"))
		recs, hb := w.Flush()
		return appendMsg(other.meta.Name(), recs, hb)
	}
	// The older batch re-sent after a later one landed (its ack lost or
	// late), and its heartbeat alone: held as sent, so acknowledged again.
	resend := func() *wire.Message { return appendMsg(c, recs, hb1) }
	replay := func() *wire.Message { return appendMsg(c, nil, hb1) }
	// The older batch re-sent with a different record: refused.
	changed := func() *wire.Message {
		m := appendMsg(c, recs, hb1)
		r := recs[len(recs)-1]
		m.Records[len(m.Records)-1] = capsule.NewRecord(c, r.Seqno, r.Time, r.Prev, []byte("other")).Marshal()
		return m
	}

	tests := []struct {
		name string
		msg  func() *wire.Message
		want wire.Status
		err  string
	}{
		{"tampered record", tamper, wire.StatusBadRequest, "data hash mismatch"},
		{"wrong writer key", wrongKey, wire.StatusUnauthorized, "bad heartbeat signature"},
		{"gap without a hole", gap, wire.StatusBadRequest, "gap without a declared hole"},
		{"batch beyond the head of a lone replica", gapAtStart, wire.StatusBadRequest, "gap without a declared hole"},
		{"oversized record", oversized, wire.StatusTooLarge, "too large"},
		{"unknown capsule", unknown, wire.StatusNotFound, "unknown capsule"},
		{"re-sent older batch", resend, wire.StatusOK, ""},
		{"re-sent older heartbeat", replay, wire.StatusOK, ""},
		{"older batch with a different record", changed, wire.StatusBadRequest, "root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u.t = t
			m := tt.msg()
			b, err := m.Marshal()
			if errors.Is(err, wire.ErrTooLarge) || len(b) > pdu.MaxPayload {
				t.Fatalf("test message does not fit a pdu: %v", err)
			}
			resp := u.do(srv.id.Name, m)
			if resp.Status != tt.want || !contains(resp.Error, tt.err) {
				t.Fatalf("status %v %q, want %v containing %q", resp.Status, resp.Error, tt.want, tt.err)
			}
			h, err := srv.srv.Store().Head(c)
			if err != nil || h.Seqno != 4 || h.Heartbeat == nil || !h.Heartbeat.Equal(hb2) {
				t.Fatalf("store changed: head %d, %v", h.Seqno, err)
			}
		})
	}
}

// forkFrom is a second writer positioned at w's head (a new epoch).
func forkFrom(c pdu.Name, w *capsule.Writer, key ed25519.PrivateKey) *capsule.Writer {
	return capsule.RestartWriter(c, key, w.Head())
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && (s == sub || indexOf(s, sub) >= 0))
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}
