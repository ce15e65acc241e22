package capsuled_test

import (
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/internal/clock"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestDeleteFromTheFutureAndUnknown: a DELETE signed more than the window
// ahead of this server's clock is refused as one signed too long ago is
// (TestDeleteClockSkew), and one for a capsule the server does not hold is
// answered 404 (mutants: the future side of the window dropped, the
// unknown-capsule check skipped: a nil metadata dereferenced).
func TestDeleteFromTheFutureAndUnknown(t *testing.T) {
	x, _, tc, u := deleteWorld(t)
	c := tc.meta.Name()
	prev := clock.SetOffset(-10 * time.Minute) // this server 10 minutes behind the owner
	resp := u.do(x.id.Name, deleteMsg(tc.owner.Key, c, x.id.Name, time.Now()))
	clock.SetOffset(prev)
	if resp.Status != wire.StatusForbidden {
		t.Fatalf("a delete from 10 minutes ahead: %v %q", resp.Status, resp.Error)
	}
	if len(x.srv.Store().Capsules()) != 1 {
		t.Fatal("a refused delete removed the capsule")
	}
	unknown := pdu.Name{0x42}
	if resp := u.do(x.id.Name, deleteMsg(tc.owner.Key, unknown, x.id.Name, time.Now())); resp.Status != wire.StatusNotFound {
		t.Fatalf("a delete of an unknown capsule: %v %q", resp.Status, resp.Error)
	}
}
