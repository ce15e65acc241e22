package tunnel

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// A peer that connects and closes in a loop (50 links in well under the
// 10 s interval) costs each side at most LinkLogBurst "link up" / "link
// accepted" / "link down" lines, while gdp_tunnel_links_opened_total and
// _closed_total count every link.
func TestReconnectLoopLogsBounded(t *testing.T) {
	srvCore, srvLogs := observer.New(zap.InfoLevel)
	cliCore, cliLogs := observer.New(zap.InfoLevel)
	srv := newTestNode(t, false, func(c *Config) { c.Logger = zap.New(srvCore) })
	cli := newTestNode(t, false, func(c *Config) { c.Logger = zap.New(cliCore) })
	const n = 50
	for i := 0; i < n; i++ {
		la, lb := pair(t, cli, srv, KindQUIC)
		la.Close()
		select {
		case <-lb.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("link %d: the accepting side did not see the close", i)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for srv.ep.Stats().LinksClosed < n && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range []struct {
		side string
		logs *observer.ObservedLogs
		msg  string
	}{{"dialer", cliLogs, "link up"}, {"dialer", cliLogs, "link down"}, {"acceptor", srvLogs, "link accepted"}, {"acceptor", srvLogs, "link down"}} {
		if got := c.logs.FilterMessage(c.msg).Len(); got < 1 || got > LinkLogBurst {
			t.Errorf("%s: %d %q lines for %d links of one peer, want 1..%d", c.side, got, c.msg, n, LinkLogBurst)
		}
	}
	cs, ss := cli.ep.Stats(), srv.ep.Stats()
	if cs.LinksDialed != n || cs.LinksClosed != n || ss.LinksAccepted != n || ss.LinksClosed != n {
		t.Fatalf("counters: dialed %d, closed %d (dialer); accepted %d, closed %d (acceptor); want %d each",
			cs.LinksDialed, cs.LinksClosed, ss.LinksAccepted, ss.LinksClosed, n)
	}
}
