package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/gdpnet/gdpnet/gateway"
)

// TestSubscriptionLimit (Session 14): max_subscriptions bounds the
// WebSockets open at once: one more is answered 503
// too_many_subscriptions before the upgrade, counted; a subscription
// closed gives its place back (mutants: the bound skipped, > made >=).
func TestSubscriptionLimit(t *testing.T) {
	_, g, c := setup(t, gateway.Config{MaxSubscriptions: 2})
	open := func() (*websocket.Conn, *http.Response, error) {
		u := strings.Replace(g.http.URL, "http://", "ws://", 1) + fmt.Sprintf("/v1/capsules/%s/subscribe?from=1", c)
		return websocket.DefaultDialer.Dial(u, http.Header{"Authorization": {"Bearer " + g.token}})
	}
	subscribed := func(conn *websocket.Conn) {
		t.Helper()
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, b, err := conn.ReadMessage(); err != nil || !strings.Contains(string(b), "subscribed") {
			t.Fatalf("first message %s %v", b, err)
		}
	}
	var conns []*websocket.Conn
	for i := range 2 {
		conn, resp, err := open()
		if err != nil {
			t.Fatalf("subscription %d of 2: %v (%v)", i+1, err, resp)
		}
		defer conn.Close()
		subscribed(conn)
		conns = append(conns, conn)
	}
	if _, resp, err := open(); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a third subscription, max 2: %v %v; want 503", err, resp)
	}
	if got := g.metric("gdp_gateway_rejected_total", "too_many_subscriptions"); got != 1 {
		t.Fatalf("rejected{too_many_subscriptions} = %v, want 1", got)
	}
	conns[0].Close()
	eventually(t, 10*time.Second, "a closed subscription's place given back", func() bool {
		conn, _, err := open()
		if err != nil {
			return false
		}
		defer conn.Close()
		subscribed(conn)
		return true
	})
}

// TestSubscribeRefusedBeforeUpgrade (Session 14): a subscription the
// gateway cannot serve is answered before the WebSocket upgrade: a bad
// from 400, a capsule nobody holds 404 (mutants: the from error ignored;
// the reader's opening error ignored — a nil reader dereferenced). A bad
// capsule name is 400 too.
func TestSubscribeRefusedBeforeUpgrade(t *testing.T) {
	_, g, c := setup(t, gateway.Config{})
	dial := func(capsule, from string) (int, error) {
		u := strings.Replace(g.http.URL, "http://", "ws://", 1) + "/v1/capsules/" + capsule + "/subscribe?from=" + from
		conn, resp, err := websocket.DefaultDialer.Dial(u, http.Header{"Authorization": {"Bearer " + g.token}})
		if conn != nil {
			conn.Close()
		}
		if resp == nil {
			return 0, err
		}
		return resp.StatusCode, err
	}
	if code, err := dial("not-a-capsule", "1"); code != http.StatusBadRequest {
		t.Fatalf("a bad capsule name: %d %v, want 400", code, err)
	}
	if code, err := dial(c, "x"); code != http.StatusBadRequest {
		t.Fatalf("from=x: %d %v, want 400", code, err)
	}
	unknown := strings.Repeat("A", len(c)) // a valid name no server holds
	if code, err := dial(unknown, "1"); code != http.StatusNotFound {
		t.Fatalf("a capsule nobody holds: %d %v, want 404", code, err)
	}
	if code, err := dial(c, "1"); code != http.StatusSwitchingProtocols {
		t.Fatalf("the capsule itself: %d %v, want 101", code, err)
	}
}

// TestSubscriptionPingAndShutdown (Session 19): a subscription with
// nothing to deliver is pinged, so a client's read timeout (the Python
// example's socket times out after 30 s) does not end it — found by hand:
// examples/gateway.py's subscriber died 30 s into an idle capsule; its
// first message carries no record fields (it had "seqno":0,"hash":""); and
// a gateway that shuts down says so — an "error" with reason "closing"
// naming the seqno to resume from, then close code 1001 — where it closed
// as normally as a finished stream.
func TestSubscriptionPingAndShutdown(t *testing.T) {
	defer gateway.SetSubscriptionPing(50 * time.Millisecond)()
	_, g, c := setup(t, gateway.Config{})
	conn := g.subscribe(t, c, 1)
	defer conn.Close()
	var pings atomic.Int32
	conn.SetPingHandler(func(d string) error {
		pings.Add(1)
		return conn.WriteControl(websocket.PongMessage, []byte(d), time.Now().Add(time.Second))
	})
	msgs, ended := make(chan []byte, 16), make(chan error, 1)
	go func() {
		for {
			_, b, err := conn.ReadMessage()
			if err != nil {
				ended <- err
				return
			}
			msgs <- b
		}
	}()
	next := func(what string) []byte {
		t.Helper()
		select {
		case b := <-msgs:
			return b
		case err := <-ended:
			t.Fatalf("%s: the WebSocket ended: %v", what, err)
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: nothing within 20 s", what)
		}
		return nil
	}
	if b := next("subscribed"); !strings.Contains(string(b), `"subscribed"`) || strings.Contains(string(b), "seqno") || strings.Contains(string(b), "hash") {
		t.Fatalf("first message %s: want subscribed without record fields", b)
	}
	eventually(t, 20*time.Second, "three pings on an idle subscription", func() bool { return pings.Load() >= 3 })

	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = g.srv.Close(ctx)
	}()
	var m struct{ Type, Error, Reason string }
	if b := next("shutdown"); json.Unmarshal(b, &m) != nil || m.Type != "error" || m.Reason != "closing" || !strings.Contains(m.Error, "from=1") {
		t.Fatalf("at shutdown: %s, want an error with reason closing and from=1", b)
	}
	select {
	case err := <-ended:
		if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Fatalf("at shutdown the WebSocket ended with %v, want close 1001 (going away)", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the WebSocket did not close at shutdown")
	}
}
