package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/advert"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestLateAdvertiseResultAccepted: a router slow to verify an ADVERTISE
// (a loaded machine) answers the first attempt only after the client sent
// the second. That answer is taken: forgetting an attempt once the next
// is sent made every re-send queue behind the last and every attempt time
// out ("no answer in time", router TestIdentityNameQuota under -race).
func TestLateAdvertiseResultAccepted(t *testing.T) {
	self, _ := certs.NewIdentity(certs.KindServer, "slow router's client")
	routerName := pdu.Name{0xee, 7}
	l := newCapLink(routerName)
	c := client.New(self, l, client.Options{RequestTimeout: 300 * time.Millisecond, Attempts: 2})
	defer c.Close()
	done := make(chan error, 1)
	go func() {
		_, err := c.Advertise(context.Background(), c.Self())
		done <- err
	}()
	_, first := l.next(t)
	ad, err := advert.ParseAdvertise(first.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if _, second := l.next(t); second.Type != pdu.TypeAdvertise || second.Sequence == first.Sequence {
		t.Fatalf("second attempt %v id %d (first id %d)", second.Type, second.Sequence, first.Sequence)
	}
	res, err := advert.MarshalResult(&advert.Result{Seq: ad.Seq, Names: []advert.NameResult{{Name: self.Name, Status: advert.StatusOK}}})
	if err != nil {
		t.Fatal(err)
	}
	c.HandlePDU(marshal(t, pdu.Header{Type: pdu.TypeAdvertiseResult, TTL: 1, Sequence: first.Sequence, Dst: self.Name, Src: routerName, Payload: res}))
	if err := <-done; err != nil {
		t.Fatalf("advertise answered late, on the first attempt: %v", err)
	}
}

// TestReplayRefusalResent: two calls of one client run at once and the
// one with the higher advert sequence reaches the router first, so the
// router's replay guard refuses the other (every name "replay"). The
// client sends that one again at once with a fresh sequence instead of
// failing it: concurrent CREATEs on one capsule server (each advertises
// its capsule) failed "advertise: replay" in about one run of thirty.
// With one attempt left nothing is re-sent and the refusal is returned.
func TestReplayRefusalResent(t *testing.T) {
	self, _ := certs.NewIdentity(certs.KindServer, "overtaken client")
	routerName := pdu.Name{0xee, 8}
	l := newCapLink(routerName)
	c := client.New(self, l, client.Options{RequestTimeout: time.Minute, Attempts: 2})
	defer c.Close()
	answer := func(h pdu.Header, s advert.Status) uint64 {
		t.Helper()
		ad, err := advert.ParseAdvertise(h.Payload)
		if err != nil {
			t.Fatal(err)
		}
		res, err := advert.MarshalResult(&advert.Result{Seq: ad.Seq, Names: []advert.NameResult{{Name: self.Name, Status: s}}})
		if err != nil {
			t.Fatal(err)
		}
		c.HandlePDU(marshal(t, pdu.Header{Type: pdu.TypeAdvertiseResult, TTL: 1, Sequence: h.Sequence, Dst: self.Name, Src: routerName, Payload: res}))
		return ad.Seq
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Advertise(context.Background(), c.Self())
		done <- err
	}()
	_, first := l.next(t)
	seq1 := answer(first, advert.StatusReplay)
	_, second := l.next(t) // at once: RequestTimeout is a minute
	if second.Type != pdu.TypeAdvertise {
		t.Fatalf("after a replay refusal the client sent %v", second.Type)
	}
	if seq2 := answer(second, advert.StatusOK); seq2 <= seq1 {
		t.Fatalf("re-sent with sequence %d, not above the refused %d", seq2, seq1)
	}
	if err := <-done; err != nil {
		t.Fatalf("advertise refused once as a replay, then accepted: %v", err)
	}

	// The last attempt refused as a replay: the refusal is the answer.
	go func() {
		_, err := c.Advertise(context.Background(), c.Self())
		done <- err
	}()
	_, h := l.next(t)
	answer(h, advert.StatusReplay)
	_, h = l.next(t)
	answer(h, advert.StatusReplay)
	if err := <-done; !errors.Is(err, client.ErrRefused) {
		t.Fatalf("every attempt refused as a replay: %v, want a refusal", err)
	}
}
