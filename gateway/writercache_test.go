package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/gateway"
	"github.com/gdpnet/gdpnet/pdu"
)

// lockTable is an exclusive per-capsule writer lock, as gdp's flock
// beside the keystore is: a second holder of one capsule is refused and
// counted. It records how many locks were held at once.
type lockTable struct {
	// slowRelease holds each release this long (a slow disk): requests
	// arriving at a writer being closed find it closing, not gone.
	slowRelease time.Duration

	mu        sync.Mutex
	held      map[pdu.Name]bool
	n, max    int
	conflicts int
}

func newLockTable() *lockTable { return &lockTable{held: map[pdu.Name]bool{}} }

func (l *lockTable) lock(c pdu.Name) (func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[c] {
		l.conflicts++
		return nil, fmt.Errorf("capsule %s: the writer lock is held", c)
	}
	l.held[c] = true
	l.n++
	l.max = max(l.max, l.n)
	var once sync.Once
	return func() {
		once.Do(func() {
			time.Sleep(l.slowRelease)
			l.mu.Lock()
			delete(l.held, c)
			l.n--
			l.mu.Unlock()
		})
	}, nil
}

func (l *lockTable) state() (n, max, conflicts int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n, l.max, l.conflicts
}

// writerWorld is a router, two replicas and a gateway over a keystore
// holding "alice", writing under locks.
type writerWorld struct {
	w     *world
	r     *node
	ks    *certs.Keystore
	locks *lockTable
	g     *gw
}

func newWriterWorld(t *testing.T, cfg gateway.Config) *writerWorld {
	w := newWorld(t)
	r := w.router("r")
	s1, s2 := w.replica(r, "s1"), w.replica(r, "s2")
	ks, err := certs.OpenKeystore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	alice, _ := certs.NewIdentity(certs.KindClient, "alice")
	if err := ks.Save("alice", alice); err != nil {
		t.Fatal(err)
	}
	ww := &writerWorld{w: w, r: r, ks: ks, locks: newLockTable()}
	ww.g = w.gatewayOn(cfg, ks, ww.locks.lock, r)
	ww.g.servers = []string{s1.Name.String(), s2.Name.String()}
	return ww
}

func (ww *writerWorld) create(t *testing.T) string {
	t.Helper()
	var created struct {
		Capsule string `json:"capsule"`
	}
	g := ww.g
	body := fmt.Sprintf(`{"owner":"alice","servers":[%q,%q],"w":2}`, g.servers[0], g.servers[1])
	if code, b := g.do("POST", "/v1/capsules", "application/json", []byte(body), &created); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	return created.Capsule
}

// appendOne appends data and returns its acknowledged seqno.
func appendOne(t *testing.T, g *gw, c, data string) uint64 {
	t.Helper()
	var out struct {
		First   uint64 `json:"first"`
		Durable bool   `json:"durable"`
	}
	if code, b := g.do("POST", "/v1/capsules/"+c+"/records", "application/json", []byte(fmt.Sprintf(`{"data":%q}`, data)), &out); code != 200 || !out.Durable {
		t.Fatalf("append %q to %s: %d %s", data, c, code, b)
	}
	return out.First
}

// records reads every record of c through g, in order.
func records(t *testing.T, g *gw, c string) []string {
	t.Helper()
	var out struct {
		Records []recordJSON `json:"records"`
	}
	if code, b := g.do("GET", "/v1/capsules/"+c+"/records?from=1", "", nil, &out); code != 200 {
		t.Fatalf("read %s: %d %s", c, code, b)
	}
	var got []string
	for i, r := range out.Records {
		if r.Seqno != uint64(i+1) || r.Data == nil {
			t.Fatalf("read %s: record %d is %+v", c, i+1, r)
		}
		got = append(got, *r.Data)
	}
	return got
}

func kvGet(t *testing.T, g *gw, c, want string) {
	t.Helper()
	var v kvJSON
	if code, b := g.do("GET", "/v1/kv/"+c+"/keys/k", "", nil, &v); code != 200 || v.Value == nil || *v.Value != want {
		t.Fatalf("kv get %s: %d %s, want %q", c, code, b, want)
	}
}

// TestWriterCacheBounded: a gateway writing more capsules than
// max_writers keeps at most max_writers writers (and writer locks) open,
// closing the least recently used first (counted); a closed writer's
// capsule reopens on its next write and continues its seqnos; the KV
// stores are bounded the same way; a reload lowers the bounds at once;
// idle_close closes every unused writer and store; and every
// acknowledged record is readable after the evictions and through a
// restarted gateway on the same keystore.
func TestWriterCacheBounded(t *testing.T) {
	ww := newWriterWorld(t, gateway.Config{MaxWriters: 2, MaxKVStores: 1, IdleClose: time.Hour})
	g := ww.g
	check := func(what string, writers, bound, idle float64) {
		t.Helper()
		if got := g.metric("gdp_gateway_writers", ""); got != writers {
			t.Fatalf("%s: gdp_gateway_writers %v, want %v", what, got, writers)
		}
		if got := g.metric("gdp_gateway_writer_evictions_total", "max_writers"); got != bound {
			t.Fatalf("%s: evictions{max_writers} %v, want %v", what, got, bound)
		}
		if got := g.metric("gdp_gateway_writer_evictions_total", "idle"); got != idle {
			t.Fatalf("%s: evictions{idle} %v, want %v", what, got, idle)
		}
		if n, _, conflicts := ww.locks.state(); float64(n) != writers || conflicts != 0 {
			t.Fatalf("%s: %d writer locks held (want %v), %d conflicts", what, n, writers, conflicts)
		}
	}
	var caps []string
	want := map[string][]string{}
	for i := 0; i < 5; i++ {
		c := ww.create(t)
		caps = append(caps, c)
		d := fmt.Sprintf("capsule %d record 1", i)
		if sq := appendOne(t, g, c, d); sq != 1 {
			t.Fatalf("capsule %d: first append got seqno %d", i, sq)
		}
		want[c] = append(want[c], d)
	}
	// 5 capsules written, bound 2: 3 closed, the two newest open.
	check("5 capsules written, bound 2", 2, 3, 0)
	if _, max, _ := ww.locks.state(); max > 2 {
		t.Fatalf("%d writer locks were held at once, bound 2", max)
	}
	// Capsule 0 was closed first: its next write opens a new writer that
	// continues from the replicas' head, and closes the least recently
	// used (capsule 3).
	d := "capsule 0 record 2"
	if sq := appendOne(t, g, caps[0], d); sq != 2 {
		t.Fatalf("capsule 0 after eviction: seqno %d, want 2", sq)
	}
	want[caps[0]] = append(want[caps[0]], d)
	check("capsule 0 reopened", 2, 4, 0)
	d = "capsule 4 record 2"
	if sq := appendOne(t, g, caps[4], d); sq != 2 {
		t.Fatalf("capsule 4 (held): seqno %d, want 2", sq)
	}
	want[caps[4]] = append(want[caps[4]], d)
	check("capsule 4 was held: nothing closed", 2, 4, 0)
	for _, c := range caps {
		if got := records(t, g, c); fmt.Sprint(got) != fmt.Sprint(want[c]) {
			t.Fatalf("capsule %s after evictions: %q, want %q", c, got, want[c])
		}
	}

	// KV stores: two KV capsules read, bound 1.
	kv1, kv2 := ww.create(t), ww.create(t)
	put := func(c, v string) {
		t.Helper()
		if code, b := g.do("PUT", "/v1/kv/"+c+"/keys/k", "application/json", []byte(fmt.Sprintf(`{"value":%q}`, v)), nil); code != 200 {
			t.Fatalf("kv put: %d %s", code, b)
		}
	}
	get := func(c, want string) {
		t.Helper()
		kvGet(t, g, c, want)
	}
	put(kv1, "one")
	put(kv2, "two")
	check("two KV capsules written: 2 more closed", 2, 6, 0)
	get(kv1, "one")
	get(kv2, "two")
	if got, ev := g.metric("gdp_gateway_kv_stores", ""), g.metric("gdp_gateway_kv_store_evictions_total", "max_kv_stores"); got != 1 || ev != 1 {
		t.Fatalf("2 KV capsules read, bound 1: %v stores, %v evictions", got, ev)
	}
	put(kv1, "one again")
	get(kv1, "one again") // reopened, and waits for what this gateway wrote
	get(kv2, "two")

	// A reload to 1 closes the least recently used writer at once.
	g.srv.Reload(gateway.Config{MaxWriters: 1, MaxKVStores: 1, IdleClose: time.Hour})
	check("reload to 1", 1, 7, 0)
	// A reload to a short idle_close closes everything unused.
	g.srv.Reload(gateway.Config{MaxWriters: 1, MaxKVStores: 1, IdleClose: 100 * time.Millisecond})
	eventually(t, 30*time.Second, "idle writers and KV stores closed", func() bool {
		return g.metric("gdp_gateway_writers", "") == 0 && g.metric("gdp_gateway_kv_stores", "") == 0
	})
	check("idle", 0, 7, 1)
	if ev := g.metric("gdp_gateway_kv_store_evictions_total", "idle"); ev != 1 {
		t.Fatalf("kv store idle evictions %v, want 1", ev)
	}
	d = "capsule 1 record 2"
	if sq := appendOne(t, g, caps[1], d); sq != 2 {
		t.Fatalf("capsule 1 after idle close: seqno %d, want 2", sq)
	}
	want[caps[1]] = append(want[caps[1]], d)

	// A restarted gateway on the same keystore reads every acknowledged
	// record and continues every capsule.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g.http.Close()
	if err := g.srv.Close(ctx); err != nil {
		t.Fatalf("gateway close: %v", err)
	}
	_ = g.up.Close()
	if n, _, _ := ww.locks.state(); n != 0 {
		t.Fatalf("%d writer locks held after the gateway stopped", n)
	}
	g2 := ww.w.gatewayOn(gateway.Config{MaxWriters: 2}, ww.ks, ww.locks.lock, ww.r)
	for i, c := range caps {
		d := fmt.Sprintf("capsule %d after the restart", i)
		if sq := appendOne(t, g2, c, d); sq != uint64(len(want[c])+1) {
			t.Fatalf("capsule %d after the restart: seqno %d, want %d", i, sq, len(want[c])+1)
		}
		want[c] = append(want[c], d)
	}
	for _, c := range caps {
		if got := records(t, g2, c); fmt.Sprint(got) != fmt.Sprint(want[c]) {
			t.Fatalf("capsule %s after the restart: %q, want %q", c, got, want[c])
		}
	}
	kvGet(t, g2, kv1, "one again")
	if _, max, conflicts := ww.locks.state(); max > 2 || conflicts != 0 {
		t.Fatalf("writer locks: %d at once (bound 2), %d conflicts", max, conflicts)
	}
}

// TestWriterEvictionRace: appends to more capsules than max_writers from
// several goroutines while writers are closed for the bound and for
// idleness under them: every acknowledged record is in its capsule at
// the seqno its answer gave, once, and no capsule ever had two writers
// (its lock was never refused).
func TestWriterEvictionRace(t *testing.T) {
	ww := newWriterWorld(t, gateway.Config{MaxWriters: 1, IdleClose: 20 * time.Millisecond})
	ww.locks.slowRelease = 20 * time.Millisecond
	g := ww.g
	caps := []string{ww.create(t), ww.create(t), ww.create(t)}
	const workers, each = 4, 6
	type ack struct {
		c, data string
		seq     uint64
	}
	var mu sync.Mutex
	var acks []ack
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				c := caps[(w+i)%len(caps)]
				d := fmt.Sprintf("worker %d append %d", w, i)
				var out struct {
					First uint64 `json:"first"`
				}
				code, b := g.do("POST", "/v1/capsules/"+c+"/records", "application/json", []byte(fmt.Sprintf(`{"data":%q}`, d)), &out)
				if code != 200 {
					t.Errorf("append %q: %d %s", d, code, b)
					return
				}
				mu.Lock()
				acks = append(acks, ack{c, d, out.First})
				mu.Unlock()
				if i%2 == 1 {
					time.Sleep(30 * time.Millisecond) // let the idle sweep close some
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	got := map[string][]string{}
	for _, c := range caps {
		got[c] = records(t, g, c)
	}
	total := 0
	for _, c := range caps {
		total += len(got[c])
	}
	if total != workers*each || len(acks) != workers*each {
		t.Fatalf("%d records stored, %d acknowledged, want %d", total, len(acks), workers*each)
	}
	for _, a := range acks {
		rs := got[a.c]
		if a.seq == 0 || a.seq > uint64(len(rs)) || rs[a.seq-1] != a.data {
			t.Fatalf("acknowledged %q at seqno %d of %s: stored %q", a.data, a.seq, a.c, rs)
		}
	}
	_, max, conflicts := ww.locks.state()
	if conflicts != 0 {
		t.Fatalf("%d writer lock conflicts: two writers of one capsule", conflicts)
	}
	t.Logf("evictions: %v for the bound, %v idle; %d locks held at most",
		g.metric("gdp_gateway_writer_evictions_total", "max_writers"), g.metric("gdp_gateway_writer_evictions_total", "idle"), max)
	if g.metric("gdp_gateway_writer_evictions_total", "max_writers") == 0 {
		t.Fatal("no writer was closed for the bound: the test did not race an eviction")
	}
}
