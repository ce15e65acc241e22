package gateway_test

import (
	"fmt"
	"net/http"
	"strings"
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
