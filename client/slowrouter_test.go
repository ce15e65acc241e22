package client_test

import (
	"context"
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
