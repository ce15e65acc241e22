package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/caapi/seal"
	"github.com/gdpnet/gdpnet/capsuled"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/gateway"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestPlainAppendRecheckSealed (Session 16): the gateway's
// encrypted-or-not mark of a capsule is in an LRU (max_readers) and is
// lost with a restart; without it, a plain append asks the nearest
// replica for record 1, and a replica that lags (or lies) answers
// "empty". Replicas "lagging" (at the gateway's router r1, so the
// capsule's name leads there) and "holding" (r2), no anti-entropy within
// the test; alice's program writes an encrypted capsule (a key record and
// a sealed record) and a plain one to "holding" only. Through the gateway
// (which never marked either): the plain append to the encrypted capsule
// is refused 409 sealed_capsule and nothing is written on either
// replica — the writer resumed above seqno 0 on a capsule that looked
// empty, so record 1 was asked of each replica; before, it was appended
// in the clear at seqno 3. The verdict is remembered (no second recheck).
// The plain capsule in the same state takes the append at seqno 2.
func TestPlainAppendRecheckSealed(t *testing.T) {
	w := newWorld(t)
	r1 := w.router("r1")
	r2 := w.router("r2", r1)
	quiet := capsuled.Config{SyncInterval: time.Hour, PeerTimeout: time.Second}
	lagging := w.replicaConf(r1, "lagging", quiet)
	holding := w.replicaConf(r2, "holding", quiet)
	g := w.gateway(gateway.Config{}, r1)
	alice, err := g.ks.Load("alice")
	if err != nil {
		t.Fatal(err)
	}
	prog := w.user(r1, "alice's program")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// capsule places a capsule of alice's on both replicas and writes
	// records (sealed or not) to holding alone.
	capsule := func(desc string, sealed bool, first ...string) pdu.Name {
		t.Helper()
		meta, err := certs.NewCapsule(alice.Key, alice.Public(), desc)
		if err != nil {
			t.Fatal(err)
		}
		places, err := client.PlaceCapsule(alice, meta, []pdu.Name{lagging.Name, holding.Name}, 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if err := prog.Create(ctx, alice, meta, 1, places); err != nil {
			t.Fatal(err)
		}
		wr, err := prog.NewWriter(ctx, meta.Name(), alice.Key, client.WriterOptions{Cadence: -1, Replicas: []pdu.Name{holding.Name}, W: 1})
		if err != nil {
			t.Fatal(err)
		}
		if sealed {
			sl, err := seal.NewSealer(ctx, wr, alice.Key)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sl.Append(ctx, []byte("secret")); err != nil {
				t.Fatal(err)
			}
		} else if len(first) > 0 {
			if _, err := wr.Append(ctx, []byte(first[0])); err != nil {
				t.Fatal(err)
			}
		} else if _, err := wr.Append(ctx, []byte("plain one")); err != nil {
			t.Fatal(err)
		}
		if err := wr.Close(ctx); err != nil {
			t.Fatal(err)
		}
		return meta.Name()
	}
	head := func(c, server pdu.Name) (pdu.Name, uint64) {
		t.Helper()
		in, err := prog.Info(ctx, c, server)
		if err != nil {
			t.Fatal(err)
		}
		if in.Heartbeat == nil {
			return in.Server, 0
		}
		return in.Server, in.Heartbeat.Seqno
	}
	sealedCap := capsule("diary", true)
	plainCap := capsule("notes", false)
	// A files capsule: record 1 a file's chunk (caapi/fs's header).
	filesCap := capsule("files", false, "gfs1C\x00\x00\x00\x00\x00\x00\x00\x00chunk of a file")
	for _, tc := range []struct {
		c    pdu.Name
		held uint64
	}{{sealedCap, 2}, {plainCap, 1}, {filesCap, 1}} {
		if by, n := head(tc.c, tc.c); by != lagging.Name || n != 0 {
			t.Fatalf("the capsule's name from r1 leads to %s showing %d records: the test needs the empty replica", by, n)
		}
		if _, n := head(tc.c, holding.Name); n != tc.held {
			t.Fatalf("holding shows %d records, want %d", n, tc.held)
		}
	}

	post := func(c pdu.Name, data string) (int, string) {
		code, b := g.do("POST", "/v1/capsules/"+c.String()+"/records", "application/json", fmt.Appendf(nil, `{"data":%q}`, data), nil)
		return code, string(b)
	}
	code, b := post(sealedCap, "in the clear")
	if code != http.StatusConflict || !strings.Contains(b, `"sealed_capsule"`) {
		t.Fatalf("plain append to an encrypted capsule whose nearest replica looks empty: %d %s, want 409 sealed_capsule", code, b)
	}
	if _, n := head(sealedCap, holding.Name); n != 2 {
		t.Fatalf("holding shows %d records after the refused append, want 2", n)
	}
	if _, n := head(sealedCap, lagging.Name); n != 0 {
		t.Fatalf("lagging shows %d records after the refused append, want 0", n)
	}
	rechecked := g.metric("gdp_gateway_sealed_records_total", "rechecked")
	if rechecked != 1 {
		t.Fatalf("rechecked %v times, want 1", rechecked)
	}
	if code, b := post(sealedCap, "again"); code != http.StatusConflict {
		t.Fatalf("second plain append: %d %s", code, b)
	}
	if got := g.metric("gdp_gateway_sealed_records_total", "rechecked"); got != rechecked {
		t.Fatalf("the verdict was not remembered: rechecked %v times", got)
	}

	var app appendJSON
	if code, b := g.do("POST", "/v1/capsules/"+plainCap.String()+"/records", "application/json", []byte(`{"data":"plain two"}`), &app); code != http.StatusOK || app.First != 2 {
		t.Fatalf("plain append to a plain capsule whose nearest replica looks empty: %d %s, want 200 at seqno 2", code, b)
	}
	if _, n := head(plainCap, holding.Name); n != 2 {
		t.Fatalf("holding shows %d records of the plain capsule, want 2", n)
	}

	// Session 19 (review12): a files capsule in the same state is refused
	// a plain record (409 files_capsule) once the recheck found its record
	// 1 at the holding replica — before, the recheck decided "plain" alone
	// and the record was appended at seqno 2, breaking the files — and the
	// verdict is remembered.
	for i := range 2 {
		if code, b := post(filesCap, "not a file"); code != http.StatusConflict || !strings.Contains(b, `"files_capsule"`) {
			t.Fatalf("append %d to a files capsule whose nearest replica looks empty: %d %s, want 409 files_capsule", i+1, code, b)
		}
	}
	if _, n := head(filesCap, holding.Name); n != 1 {
		t.Fatalf("holding shows %d records of the files capsule after the refused appends, want 1", n)
	}
	if _, n := head(filesCap, lagging.Name); n != 0 {
		t.Fatalf("lagging shows %d records of the files capsule after the refused appends, want 0", n)
	}
}
