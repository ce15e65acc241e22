package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/gateway"
	"github.com/gdpnet/gdpnet/pdu"
)

// BenchmarkGatewayAppend: records appended through the gateway's HTTP API
// in NDJSON batches, beside the same records appended by the Go SDK's
// Writer in the same run: same router, same two replicas (W=2), same
// record size, same batch boundaries (one flush per batch, which the
// gateway does at the end of each request), batches alternating. b.N
// records each way.
// Reports records/s of both and their ratio (target ≥ 0.5).
func BenchmarkGatewayAppend(b *testing.B) {
	const batch, size = 1000, 200
	w := newWorld(b)
	r := w.router("r")
	s1, s2 := w.replica(r, "s1"), w.replica(r, "s2")
	g := w.gateway(gateway.Config{}, r)
	create := func(desc string) pdu.Name {
		var out struct{ Capsule string }
		body := fmt.Sprintf(`{"owner":"alice","servers":[%q,%q],"w":2,"description":%q}`, s1.Name, s2.Name, desc)
		if code, b2 := g.do("POST", "/v1/capsules", "application/json", []byte(body), &out); code != http.StatusCreated {
			b.Fatalf("create: %d %s", code, b2)
		}
		n, _ := pdu.ParseName(out.Capsule)
		return n
	}
	payload := bytes.Repeat([]byte("x"), size)
	line := []byte(fmt.Sprintf("{\"data\":%q}\n", payload))

	// The SDK: a Go program with its own attachment to the same router.
	sdkCapsule := create("sdk")
	alice, _ := g.ks.Load("alice")
	cc := w.user(r, "sdk user")
	ctx := context.Background()
	wr, err := cc.NewWriter(ctx, sdkCapsule, alice.Key, client.WriterOptions{Cadence: -1})
	if err != nil {
		b.Fatal(err)
	}
	gwCapsule := create("gateway")
	body := bytes.Repeat(line, batch)
	path := "/v1/capsules/" + gwCapsule.String() + "/records"
	// Warm both paths (writers opened, routes learned).
	if _, err := wr.Append(ctx, payload); err != nil {
		b.Fatal(err)
	}
	if _, err := wr.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	if code, b2 := g.do("POST", path, "application/x-ndjson", line, nil); code != 200 {
		b.Fatalf("%d %s", code, b2)
	}
	b.ResetTimer()

	// Batches alternate between the two, so load from elsewhere on the
	// machine falls on both alike.
	var sdk, gw time.Duration
	for done := 0; done < b.N; {
		n := min(batch, b.N-done)
		start := time.Now()
		for range n {
			if _, err := wr.Append(ctx, payload); err != nil {
				b.Fatal(err)
			}
		}
		if d, err := wr.Flush(ctx); err != nil || !d.Met {
			b.Fatalf("sdk flush: %v %v", d, err)
		}
		sdk += time.Since(start)
		start = time.Now()
		var out struct{ Durable bool }
		if code, b2 := g.do("POST", path, "application/x-ndjson", body[:n*len(line)], &out); code != 200 || !out.Durable {
			b.Fatalf("gateway append: %d %s", code, b2)
		}
		gw += time.Since(start)
		done += n
	}
	b.StopTimer()
	sdkRate, gwRate := float64(b.N)/sdk.Seconds(), float64(b.N)/gw.Seconds()
	b.ReportMetric(sdkRate, "sdk_records/s")
	b.ReportMetric(gwRate, "gateway_records/s")
	b.ReportMetric(gwRate/sdkRate, "ratio")
	_ = wr.Close(ctx)
}
