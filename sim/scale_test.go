package sim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// BenchmarkScaleInProcess builds a grid of routers in-process (default
// 32×32 = 1,024; GDP_SIM_GRID=N for N×N), attaches 16 clients at random
// routers, and pings every client from another across the grid: the
// figure is the build time, the memory held, and how many pings crossed.
// The resolver is the shared static one (kad-dht in the simulator is not
// built yet). Run: go test -run '^$' -bench ScaleInProcess -benchtime 1x ./sim
func BenchmarkScaleInProcess(b *testing.B) {
	side := 32
	if v, err := strconv.Atoi(os.Getenv("GDP_SIM_GRID")); err == nil && v > 1 {
		side = v
	}
	for range b.N {
		top, err := Builtin("grid", Params{Rows: side, Cols: side, Delay: time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		top.Workloads = nil
		rng := rand.New(rand.NewPCG(1, 2))
		var clients []string
		for k := range 16 {
			c := fmt.Sprintf("x%d", k)
			top.AddClient(c, fmt.Sprintf("r%d_%d", rng.IntN(side), rng.IntN(side)))
			clients = append(clients, c)
		}
		for k, c := range clients {
			top.Ping(c, clients[(k+5)%len(clients)], 5, 200*time.Millisecond)
		}
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		t0 := time.Now()
		s, err := Start(context.Background(), top, Options{Parallel: 16})
		if err != nil {
			b.Fatal(err)
		}
		build := time.Since(t0)
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		res, err := s.Run(context.Background())
		s.Close()
		if err != nil {
			b.Fatal(err)
		}
		sent, recv := 0, 0
		for _, w := range res.Workloads {
			sent += w.Sent
			recv += w.Received
		}
		b.ReportMetric(float64(side*side), "routers")
		b.ReportMetric(build.Seconds(), "build-s")
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(after.Sys)/(1<<20), "sys-MiB")
		b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines-after")
		b.ReportMetric(float64(recv)/float64(sent), "pings-answered")
		b.Logf("%d routers built in %s; %s", side*side, build.Round(time.Millisecond), res.Summary)
		if recv < sent*9/10 {
			b.Fatalf("only %d of %d pings answered", recv, sent)
		}
	}
}
