package client

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
)

// fakeNet is the writer's face to its router, with everything behind it
// played by the test: it records every PDU the client sends (what the face
// actually sent, not what came back) and hands each capsule request to
// serve, whose answers it delivers as PDUs from the names serve chooses,
// source names included: it can forge any source, as a malicious router on
// the path could.
type fakeNet struct {
	self  pdu.Name
	c     *Client
	serve func(sent pdu.Header, m *wire.Message) []answer
	done  chan struct{}
	once  sync.Once

	mu   sync.Mutex
	sent []pdu.Header
}

type answer struct {
	from  pdu.Name
	msg   *wire.Message
	delay time.Duration
}

func (f *fakeNet) Peer() pdu.Name        { return pdu.Name{0xee} }
func (f *fakeNet) Done() <-chan struct{} { return f.done }
func (f *fakeNet) Close() error          { f.once.Do(func() { close(f.done) }); return nil }

func (f *fakeNet) Send(p []byte) error {
	var h pdu.Header
	if err := pdu.Decode(p, &h); err != nil {
		return err
	}
	h.Payload = append([]byte(nil), h.Payload...)
	h.Options = nil
	f.mu.Lock()
	f.sent = append(f.sent, h)
	f.mu.Unlock()
	if h.Type != pdu.TypeData || f.serve == nil {
		return nil
	}
	m, err := wire.Unmarshal(h.Payload)
	if err != nil {
		return nil
	}
	for _, a := range f.serve(h, m) {
		go func(a answer) {
			time.Sleep(a.delay)
			b, err := a.msg.Marshal()
			if err != nil {
				panic(err)
			}
			out := pdu.Header{Type: pdu.TypeData, TTL: 32, Src: a.from, Dst: f.self, Payload: b}
			pb, err := out.Marshal()
			if err != nil {
				panic(err)
			}
			f.c.HandlePDU(pb)
		}(a)
	}
	return nil
}

// appends returns the APPEND PDUs sent so far.
func (f *fakeNet) appends() []pdu.Header {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []pdu.Header
	for _, h := range f.sent {
		if m, err := wire.Unmarshal(h.Payload); err == nil && m.Op == wire.OpAppend && !m.IsResponse() {
			out = append(out, h)
		}
	}
	return out
}

// trustWorld is a capsule placed by its owner on three servers (W=2), a
// rogue server the owner placed it on too (it holds a genuine AdCert but
// is not in the signed placement record), and a writer client on a
// fakeNet.
type trustWorld struct {
	t       *testing.T
	owner   *certs.Identity
	writer  *certs.Identity
	meta    *certs.Metadata
	name    pdu.Name
	servers []*certs.Identity // the three honest replicas
	ads     map[pdu.Name]*certs.Cert
	rec     *capsule.Placement
	rogue   *certs.Identity
	net     *fakeNet
	cc      *CapsuleClient

	up atomic.Value // map[pdu.Name]bool: honest replicas that answer
}

func newTrustWorld(t *testing.T) *trustWorld {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	tw := &trustWorld{t: t, ads: map[pdu.Name]*certs.Cert{}}
	var err error
	tw.owner, err = certs.NewIdentity(certs.KindClient, "owner")
	must(err)
	tw.writer, err = certs.NewIdentity(certs.KindClient, "writer")
	must(err)
	tw.meta, err = certs.NewCapsule(tw.owner.Key, tw.writer.Public(), "trusted log")
	must(err)
	tw.name = tw.meta.Name()
	var names []pdu.Name
	for _, d := range []string{"h1", "h2", "h3"} {
		id, err := certs.NewIdentity(certs.KindServer, d)
		must(err)
		tw.servers = append(tw.servers, id)
		names = append(names, id.Name)
	}
	tw.rogue, err = certs.NewIdentity(certs.KindServer, "rogue")
	must(err)
	now := time.Now()
	for _, id := range append(slices.Clone(tw.servers), tw.rogue) {
		ad, err := certs.IssueAdCert(tw.owner.Key, tw.name, id.Name, now.Add(-time.Minute), now.Add(time.Hour))
		must(err)
		tw.ads[id.Name] = ad
	}
	tw.rec, err = capsule.SignPlacement(tw.owner.Key, tw.meta, names, 2, now)
	must(err)
	tw.setUp(names...)

	me, err := certs.NewIdentity(certs.KindClient, "writer endpoint")
	must(err)
	tw.net = &fakeNet{self: me.Name, done: make(chan struct{})}
	tw.net.c = New(me, tw.net, Options{})
	tw.cc = NewCapsuleClient(tw.net.c, CapsuleOptions{Timeout: 200 * time.Millisecond, Attempts: 2})
	t.Cleanup(func() {
		_ = tw.cc.Close()
		_ = tw.net.c.Close()
		_ = tw.net.Close()
	})
	return tw
}

func (tw *trustWorld) setUp(names ...pdu.Name) {
	m := map[pdu.Name]bool{}
	for _, n := range names {
		m[n] = true
	}
	tw.up.Store(m)
}

func (tw *trustWorld) isUp(n pdu.Name) bool { return tw.up.Load().(map[pdu.Name]bool)[n] }

func (tw *trustWorld) server(n pdu.Name) *certs.Identity {
	for _, id := range append(slices.Clone(tw.servers), tw.rogue) {
		if id.Name == n {
			return id
		}
	}
	return nil
}

// metadataAnswer is server id's honest METADATA answer for an empty capsule.
func (tw *trustWorld) metadataAnswer(req *wire.Message, id *certs.Identity) *wire.Message {
	resp := req.Reply(wire.StatusOK)
	resp.Metadata, resp.Replicas, resp.W = tw.meta.Marshal(), wire.NameBytes(tw.rec.Replicas), uint64(tw.rec.W)
	resp.Placement, resp.AdCert, resp.Server = tw.rec.Marshal(), tw.ads[id.Name].Marshal(), id.Meta.Marshal()
	return resp
}

// appendAnswer is server id's honest APPEND answer with its receipt.
func (tw *trustWorld) appendAnswer(req *wire.Message, id *certs.Identity) *wire.Message {
	hb, err := capsule.UnmarshalHeartbeat(req.Heartbeat)
	if err != nil {
		panic(err)
	}
	resp := req.Reply(wire.StatusOK)
	resp.Head = hb.Seqno
	resp.Receipt = capsule.NewReceipt(hb, id.Name, id.Key).Marshal()
	resp.AdCert, resp.Server = tw.ads[id.Name].Marshal(), id.Meta.Marshal()
	return resp
}

// honest serves METADATA and APPEND from the replicas that are up; a
// request to the capsule's name goes to the first replica.
func (tw *trustWorld) honest(h pdu.Header, m *wire.Message) []answer {
	dst := h.Dst
	if dst == tw.name {
		dst = tw.servers[0].Name
	}
	var out []answer
	targets := []pdu.Name{dst}
	if h.Flags&pdu.FlagMulticast != 0 {
		targets = tw.rec.Replicas
	}
	for _, d := range targets {
		id := tw.server(d)
		if id == nil || !tw.isUp(d) {
			continue
		}
		switch m.Op {
		case wire.OpMetadata:
			out = append(out, answer{from: d, msg: tw.metadataAnswer(m, id)})
		case wire.OpAppend:
			out = append(out, answer{from: d, msg: tw.appendAnswer(m, id)})
		}
	}
	return out
}

// TestForgedAcksDoNotMeetW: a party that sees the writer's APPENDs and can
// put any source name on its answers (a malicious router on the path, or
// a rogue server holding its own AdCert) answers "stored" for the two
// replicas that are down. None of its answers carries a receipt signed by
// the replica it names, so the writer reports W not met, and keeps
// re-sending to the silent replicas within its attempts; once they are
// back their receipts count.
func TestForgedAcksDoNotMeetW(t *testing.T) {
	tw := newTrustWorld(t)
	h1, h2, h3 := tw.servers[0], tw.servers[1], tw.servers[2]
	var stale []byte // h2's genuine receipt for an earlier batch
	var forged atomic.Int64
	tw.net.serve = func(h pdu.Header, m *wire.Message) []answer {
		out := tw.honest(h, m)
		if m.Op != wire.OpAppend || h.Dst != h2.Name && h.Dst != h3.Name || tw.isUp(h.Dst) {
			if m.Op == wire.OpAppend && h.Dst == h2.Name && stale == nil {
				stale = tw.appendAnswer(m, h2).Receipt
			}
			return out
		}
		victim := tw.server(h.Dst)
		hb, _ := capsule.UnmarshalHeartbeat(m.Heartbeat)
		// 1. "ok" with no receipt at all.
		bare := m.Reply(wire.StatusOK)
		// 2. A receipt naming the victim, signed by the rogue, with the
		// victim's genuine metadata and AdCert.
		bySelf := tw.appendAnswer(m, victim)
		bySelf.Receipt = capsule.NewReceipt(hb, victim.Name, tw.rogue.Key).Marshal()
		// 3. The victim's genuine receipt for an earlier batch (replayed).
		replay := tw.appendAnswer(m, victim)
		replay.Receipt = stale
		// 4. The rogue's own, valid receipt, but with the victim's source:
		// the rogue holds an AdCert, yet is not in the signed placement.
		rogueOwn := tw.appendAnswer(m, tw.rogue)
		out = append(out, answer{from: victim.Name, msg: bare}, answer{from: victim.Name, msg: bySelf},
			answer{from: victim.Name, msg: replay}, answer{from: victim.Name, msg: rogueOwn},
			answer{from: tw.rogue.Name, msg: tw.appendAnswer(m, tw.rogue)})
		forged.Add(5)
		return out
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wr, err := tw.cc.NewWriter(ctx, tw.name, tw.writer.Key, WriterOptions{Cadence: -1, Timeout: 150 * time.Millisecond, Attempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close(context.Background())

	// All up: honest replication, with verified receipts.
	if _, err := wr.Append(ctx, []byte("one")); err != nil {
		t.Fatal(err)
	}
	d, err := wr.Flush(ctx)
	if err != nil || !d.Met || d.Acks < 2 || len(d.Receipts) != d.Acks {
		t.Fatalf("all up: %v %v", d, err)
	}
	for i, rc := range d.Receipts {
		if rc == nil || rc.Server != d.Holders[i] || rc.Seqno != d.Seqno {
			t.Fatalf("receipt %d: %+v for holder %s", i, rc, d.Holders[i])
		}
	}
	if stale == nil {
		t.Fatal("no receipt of h2 recorded")
	}

	// h2 and h3 down: only h1's receipt counts.
	tw.setUp(h1.Name)
	before := len(tw.net.appends())
	if _, err := wr.Append(ctx, []byte("two")); err != nil {
		t.Fatal(err)
	}
	d, err = wr.Flush(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d.Met || d.Acks != 1 || d.Holders[0] != h1.Name {
		t.Fatalf("with forged acks for the replicas that are down: %v (holders %v)", d, d.Holders)
	}
	if forged.Load() == 0 || tw.cc.BadReceipts.Load()+tw.cc.Forged.Load() == 0 {
		t.Fatalf("forgeries sent %d, refused: %d bad receipts, %d wrong sources", forged.Load(), tw.cc.BadReceipts.Load(), tw.cc.Forged.Load())
	}
	resent := map[pdu.Name]int{}
	for _, h := range tw.net.appends()[before:] {
		resent[h.Dst]++
	}
	if resent[h2.Name] < 2 || resent[h3.Name] < 2 || resent[h1.Name] != 1 {
		t.Fatalf("APPENDs sent per replica: %v (want the silent ones re-sent, h1 once)", resent)
	}

	// h2 back: its receipt makes W again.
	tw.setUp(h1.Name, h2.Name)
	if _, err := wr.Append(ctx, []byte("three")); err != nil {
		t.Fatal(err)
	}
	if d, err := wr.Flush(ctx); err != nil || !d.Met || d.Acks != 2 {
		t.Fatalf("h2 back: %v %v", d, err)
	}
}

// TestWriterReplicaSetFromOwnerRecord: the nearest server's METADATA
// answer lists only itself with W=1. Without a placement record signed by
// the capsule's owner the writer refuses; with one signed by another key
// it refuses; with the owner's genuine record it writes to the record's
// replicas with the record's W, whatever the server's own fields say.
func TestWriterReplicaSetFromOwnerRecord(t *testing.T) {
	tw := newTrustWorld(t)
	mode := "none"
	var mu sync.Mutex
	tw.net.serve = func(h pdu.Header, m *wire.Message) []answer {
		if m.Op != wire.OpMetadata || h.Dst != tw.name {
			return tw.honest(h, m)
		}
		mu.Lock()
		defer mu.Unlock()
		lie := tw.metadataAnswer(m, tw.rogue)
		lie.Replicas, lie.W = wire.NameBytes([]pdu.Name{tw.rogue.Name}), 1
		switch mode {
		case "none":
			lie.Placement = nil
		case "self-signed":
			// The rogue signs a record of its own (it is not the owner).
			p := &capsule.Placement{Capsule: tw.name, Replicas: []pdu.Name{tw.rogue.Name}, W: 1, Issued: time.Now().Add(time.Hour).Truncate(time.Second)}
			fake, err := capsule.SignPlacement(tw.rogue.Key, tw.rogueMeta(), p.Replicas, 1, p.Issued)
			if err != nil {
				panic(err)
			}
			fake.Capsule = tw.name // re-labelled: the signature no longer covers it
			lie.Placement = fake.Marshal()
		case "genuine":
			lie.Placement = tw.rec.Marshal()
		}
		return []answer{{from: tw.rogue.Name, msg: lie}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := WriterOptions{Cadence: -1, Timeout: 150 * time.Millisecond, Attempts: 2}
	if _, err := tw.cc.NewWriter(ctx, tw.name, tw.writer.Key, opts); !errors.Is(err, ErrNoPlacement) {
		t.Fatalf("unsigned replica set: %v", err)
	}
	mu.Lock()
	mode = "self-signed"
	mu.Unlock()
	if _, err := tw.cc.NewWriter(ctx, tw.name, tw.writer.Key, opts); !errors.Is(err, capsule.ErrBadPlacement) {
		t.Fatalf("placement signed by another key: %v", err)
	}
	mu.Lock()
	mode = "genuine"
	mu.Unlock()
	wr, err := tw.cc.NewWriter(ctx, tw.name, tw.writer.Key, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close(context.Background())
	rs, w := wr.Replicas()
	if !slices.Equal(rs, tw.rec.Replicas) || w != 2 {
		t.Fatalf("writer took replicas %v w=%d, want the record's %v w=2", rs, w, tw.rec.Replicas)
	}
	if _, err := wr.Append(ctx, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if d, err := wr.Flush(ctx); err != nil || !d.Met || d.N != 3 || slices.Contains(d.Holders, tw.rogue.Name) {
		t.Fatalf("write: %v %v", d, err)
	}
}

// rogueMeta is capsule metadata whose owner key is the rogue's: a record
// signed with it is well-formed but not the victim owner's.
func (tw *trustWorld) rogueMeta() *certs.Metadata {
	m := *tw.meta
	m.Key = tw.rogue.Public()
	return &m
}

// TestAnswersMatchedBySource: an answer carrying the request's id from a
// node that was not asked is not taken, so a party that sees (or guesses)
// an id cannot answer a READ for the server the reader chose.
func TestAnswersMatchedBySource(t *testing.T) {
	tw := newTrustWorld(t)
	h1, h2 := tw.servers[0], tw.servers[1]
	tw.net.serve = func(h pdu.Header, m *wire.Message) []answer {
		if m.Op != wire.OpRead {
			return tw.honest(h, m)
		}
		fake := m.Reply(wire.StatusNotFound)
		fake.Error = "forged"
		real := m.Reply(wire.StatusOK)
		return []answer{{from: h2.Name, msg: fake}, {from: h1.Name, msg: real, delay: 50 * time.Millisecond}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rep, err := tw.cc.callOK(ctx, h1.Name, &wire.Message{Op: wire.OpRead, Capsule: tw.name[:], From: 1}, false)
	if err != nil || rep.From != h1.Name {
		t.Fatalf("read from h1: %v from %s", err, rep.From)
	}
	if tw.cc.Forged.Load() != 1 {
		t.Fatalf("forged answers counted: %d", tw.cc.Forged.Load())
	}
}

// TestMulticastSendsOnePDU: with WriterOptions.Multicast the writer's face
// sends each APPEND once, to the capsule's name with the MULTICAST flag;
// without it, once to each replica's own name. Counted on what the face
// sent, so a writer ignoring the option fails.
func TestMulticastSendsOnePDU(t *testing.T) {
	for _, mc := range []bool{true, false} {
		tw := newTrustWorld(t)
		tw.net.serve = tw.honest
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		wr, err := tw.cc.NewWriter(ctx, tw.name, tw.writer.Key, WriterOptions{Cadence: -1, Multicast: mc, Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if _, err := wr.Append(ctx, []byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
			if d, err := wr.Flush(ctx); err != nil || !d.Met {
				t.Fatalf("multicast=%t flush %d: %v %v", mc, i, d, err)
			}
		}
		sent := tw.net.appends()
		if mc {
			if len(sent) != 3 {
				t.Fatalf("multicast: %d APPEND PDUs sent for 3 batches, want 3", len(sent))
			}
			for _, h := range sent {
				if h.Dst != tw.name || h.Flags&pdu.FlagMulticast == 0 {
					t.Fatalf("multicast APPEND to %s flags %s", h.Dst, h.Flags)
				}
			}
		} else {
			per := map[pdu.Name]int{}
			for _, h := range sent {
				if h.Flags&pdu.FlagMulticast != 0 {
					t.Fatalf("unicast APPEND with flags %s", h.Flags)
				}
				per[h.Dst]++
			}
			if len(sent) != 9 || len(per) != 3 || per[tw.name] != 0 {
				t.Fatalf("unicast: %d APPEND PDUs to %v, want 3 to each replica", len(sent), per)
			}
		}
		_ = wr.Close(ctx)
		cancel()
	}
}

// TestPushesOnlyFromTheSubscribedServer: a subscription takes EVENT
// pushes only from the server whose answer (matched by source and id)
// acknowledged the SUBSCRIBE; a push with the subscription's id from
// another node is dropped and counted.
func TestPushesOnlyFromTheSubscribedServer(t *testing.T) {
	tw := newTrustWorld(t)
	h1, h2 := tw.servers[0].Name, tw.servers[1].Name
	tw.net.serve = func(h pdu.Header, m *wire.Message) []answer {
		if m.Op != wire.OpSubscribe {
			return tw.honest(h, m)
		}
		ok := m.Reply(wire.StatusOK)
		ok.From = 1
		ev := &wire.Message{Op: wire.OpEvent, ID: m.ID, Capsule: tw.name[:], From: 1}
		return []answer{{from: h1, msg: ok}, {from: h2, msg: ev, delay: 20 * time.Millisecond},
			{from: h1, msg: ev, delay: 60 * time.Millisecond}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rd, err := tw.cc.NewReader(ctx, tw.name, ReaderOptions{Server: h1})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := rd.Subscribe(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	deadline := time.Now().Add(5 * time.Second)
	for len(sub.ch) < 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(sub.ch); n != 1 || tw.cc.Forged.Load() != 1 {
		t.Fatalf("%d pushes queued (want h1's only), %d forged counted", n, tw.cc.Forged.Load())
	}
}

// TestPushBeforeSubscribeAnswer: a server's push can overtake its answer
// to the SUBSCRIBE (its push goroutine starts before the answer is sent),
// and after a failover a renewal sent to the capsule's name may be taken by
// another replica whose push overtakes its answer the same way. Each such
// push is held until its own server's answer and then delivered, not lost
// until the next renewal (a subscription resumed 14.5 s after its gateway's
// uplink router was killed: the second replica's push came first and was
// refused, and the first replica's was refused after the second's answer).
// A push from a node that never answers is never delivered; once more than
// maxEarlyPushes wait, the oldest are dropped and counted (Dropped: its
// server may yet answer; nothing shows it forged).
func TestPushBeforeSubscribeAnswer(t *testing.T) {
	tw := newTrustWorld(t)
	h1, h2, h3 := tw.servers[0].Name, tw.servers[1].Name, tw.servers[2].Name
	var subs atomic.Int32
	tw.net.serve = func(h pdu.Header, m *wire.Message) []answer {
		if m.Op != wire.OpSubscribe {
			return tw.honest(h, m)
		}
		ok := m.Reply(wire.StatusOK)
		ok.From = 1
		ev := &wire.Message{Op: wire.OpEvent, ID: m.ID, Capsule: tw.name[:], From: 1}
		if subs.Add(1) == 1 {
			// The first SUBSCRIBE: h1 takes it, its push first; a push
			// from h3, which never answers, in between.
			return []answer{{from: h1, msg: ev}, {from: h3, msg: ev, delay: 20 * time.Millisecond},
				{from: h1, msg: ok, delay: 80 * time.Millisecond}}
		}
		// The renewal after a failover: h2 takes it, its push first.
		return []answer{{from: h2, msg: ev}, {from: h2, msg: ok, delay: 80 * time.Millisecond}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rd, err := tw.cc.NewReader(ctx, tw.name, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := rd.Subscribe(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	waitQueued := func(want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for len(sub.ch) < want && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond)
		if n := len(sub.ch); n != want || tw.cc.Forged.Load() != 0 {
			t.Fatalf("%d pushes queued (want %d), %d forged counted (want 0: h3's push is held, undelivered)", n, want, tw.cc.Forged.Load())
		}
	}
	waitQueued(1) // h1's
	if err := sub.subscribe(ctx, false); err != nil {
		t.Fatal(err)
	}
	waitQueued(2) // and h2's, which came before h2's answer
	// h3 never answers: its pushes wait, bounded, and are never delivered.
	for range maxEarlyPushes {
		b, err := (&wire.Message{Op: wire.OpEvent, ID: sub.id, Capsule: tw.name[:], From: 1}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		pb, err := (&pdu.Header{Type: pdu.TypeData, TTL: 32, Src: h3, Dst: tw.net.self, Payload: b}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		tw.net.c.HandlePDU(pb)
	}
	dropped := tw.cc.Dropped.Load()
	deadline := time.Now().Add(5 * time.Second)
	for tw.cc.Dropped.Load() < dropped+1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n, d, f := len(sub.ch), tw.cc.Dropped.Load()-dropped, tw.cc.Forged.Load(); n != 2 || d != 1 || f != 0 {
		t.Fatalf("after %d more pushes from h3: %d queued (want 2), %d dropped (want 1: the oldest held), %d forged (want 0)", maxEarlyPushes, n, d, f)
	}
}

// TestResumeUntilAPushComes: a subscription that resumes (Renew after a
// failover, or a gap) and hears an answer saying the server holds records
// it has not delivered, but no push (lost on a path still converging), asks
// again after the client's timeout, then at doubling intervals — not only
// at the lease renewal 10 s later. An answer saying nothing is owed stops
// the asking.
func TestResumeUntilAPushComes(t *testing.T) {
	for _, owed := range []bool{true, false} {
		tw := newTrustWorld(t)
		h1 := tw.servers[0].Name
		var subs atomic.Int32
		tw.net.serve = func(h pdu.Header, m *wire.Message) []answer {
			if m.Op != wire.OpSubscribe {
				return tw.honest(h, m)
			}
			subs.Add(1)
			ok := m.Reply(wire.StatusOK)
			ok.From = 1
			if owed {
				ok.Head = 10 // records 1–10 held, and their push lost
			}
			return []answer{{from: h1, msg: ok}}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rd, err := tw.cc.NewReader(ctx, tw.name, ReaderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sub, err := rd.Subscribe(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		nctx, ncancel := context.WithTimeout(ctx, 1600*time.Millisecond)
		go func() { _, _ = sub.Next(nctx) }()
		time.Sleep(20 * time.Millisecond)
		sub.Renew()
		<-nctx.Done()
		ncancel()
		time.Sleep(20 * time.Millisecond)
		// The client's timeout is 200 ms: the Renew at ~0, asks again at
		// ~0.2, ~0.6, ~1.4 s when owed; none after the Renew when not.
		got := subs.Load() - 1 // the first SUBSCRIBE
		if owed && (got < 3 || got > 5) {
			t.Fatalf("owed records: %d SUBSCRIBEs in 1.6 s after the Renew, want 4 (the Renew, then at 0.2, 0.6, 1.4 s)", got)
		}
		if !owed && got != 1 {
			t.Fatalf("nothing owed: %d SUBSCRIBEs in 1.6 s after the Renew, want 1 (the Renew alone)", got)
		}
		_ = sub.Close()
		cancel()
	}
}
