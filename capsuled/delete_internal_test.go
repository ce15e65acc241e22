package capsuled

import (
	"errors"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/pdu"
)

// TestDeleteResendWaitsForTheFirst: a copy of the DELETE being carried
// out (the client re-sent it: the answer was late) is not a replay — it
// gets the first one's outcome; once that is done, the same signed DELETE
// again, or an older one, is a replay; a newer one is a new DELETE.
func TestDeleteResendWaitsForTheFirst(t *testing.T) {
	var d deletes
	c := pdu.Name{7}
	now := time.Now()
	t0 := uint64(now.UnixNano())
	run, first := d.admit(c, t0, now)
	if run == nil || !first {
		t.Fatal("a new DELETE was not admitted")
	}
	cp, first := d.admit(c, t0, now)
	if cp != run || first {
		t.Fatalf("a copy during the run: %v %v, want the first run", cp, first)
	}
	if r, _ := d.admit(c, t0-1, now); r != nil {
		t.Fatal("an older DELETE admitted during the run")
	}
	failed := errors.New("disk full")
	go run.finish(failed)
	<-cp.done
	if !errors.Is(cp.err, failed) {
		t.Fatalf("the copy saw %v, want the first's outcome", cp.err)
	}
	if r, _ := d.admit(c, t0, now); r != nil {
		t.Fatal("the same DELETE after it was carried out: admitted (a replay)")
	}
	if r, first := d.admit(c, t0+1, now); r == nil || !first {
		t.Fatal("a newer DELETE was refused")
	}
}
