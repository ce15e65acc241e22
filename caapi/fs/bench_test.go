package fs_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/caapi/fs"
	"github.com/gdpnet/gdpnet/caapi/fs/mount"
)

// modelBytes is the size of the benchmark's model file: the seed's 255 MB.
const modelBytes = 255_000_000

// writeModel writes a tensor file of about modelBytes bytes (the format
// testdata/loader parses): 12 tensors of float32.
func writeModel(tb testing.TB, path string) {
	tb.Helper()
	fh, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(fh, 1<<20)
	const tensors = 12
	per := modelBytes / 4 / tensors
	hdr := binary.LittleEndian.AppendUint32([]byte("GDPT"), tensors)
	_, _ = w.Write(hdr)
	r := rand.New(rand.NewPCG(42, 42))
	buf := make([]byte, 4*4096)
	for i := range tensors {
		name := fmt.Sprintf("layer%02d.weight", i)
		b := binary.LittleEndian.AppendUint16(nil, uint16(len(name)))
		b = append(b, name...)
		b = binary.LittleEndian.AppendUint32(b, 2)
		b = binary.LittleEndian.AppendUint32(b, uint32(per/1250))
		b = binary.LittleEndian.AppendUint32(b, 1250)
		_, _ = w.Write(b)
		for left := per / 1250 * 1250; left > 0; {
			k := min(left, len(buf)/4)
			for j := range k {
				binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(r.Float32()*2-1))
			}
			_, _ = w.Write(buf[:4*k])
			left -= k
		}
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		tb.Fatal(err)
	}
}

// dropCaches writes back dirty pages and drops the page cache (root only).
func dropCaches(tb testing.TB) {
	tb.Helper()
	syscall.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		tb.Skipf("cannot drop the page cache (the figure needs it; run as root): %v", err)
	}
}

var loaderOut = regexp.MustCompile(`floats sum (\S+) seconds (\S+)`)

// runLoader runs the loader on path and returns its load time (the
// process's own measure, from open to the last tensor parsed) and sum.
func runLoader(tb testing.TB, loader, path string) (time.Duration, string) {
	tb.Helper()
	out, err := exec.Command(loader, path).CombinedOutput()
	if err != nil {
		tb.Fatalf("loader %s: %v\n%s", path, err, out)
	}
	m := loaderOut.FindStringSubmatch(string(out))
	if m == nil {
		tb.Fatalf("loader output: %s", out)
	}
	s, _ := strconv.ParseFloat(m[2], 64)
	return time.Duration(s * float64(time.Second)), m[1]
}

// cpuTime is the CPU time (user + system) this process and its waited-for
// children used so far: the routers, the capsule server and the mount run
// in this process, the loader as a child.
func cpuTime() time.Duration {
	var self, kids syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(self.Utime) + tv(self.Stime) + tv(kids.Utime) + tv(kids.Stime)
}

// rawRead reads path sequentially (1 MiB reads) and returns the time.
func rawRead(tb testing.TB, path string) time.Duration {
	tb.Helper()
	start := time.Now()
	fh, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer fh.Close()
	n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{fh}, make([]byte, 1<<20))
	if err != nil || n == 0 {
		tb.Fatalf("read %s: %d bytes, %v", path, n, err)
	}
	return time.Since(start)
}

// BenchmarkModelLoad is the seed's figure: a loader program parses a
// 255 MB float32 model into memory from local disk, and from the files
// capsule through the FUSE mount with the replica behind another router,
// page caches dropped before each run (and the capsule server restarted,
// so its block cache is cold too). Also the raw sequential read of the
// file: local, through the mount, and through the `gdp fs get` path
// (fs.File.WriteTo). Needs root (drop_caches) and FUSE; skips otherwise.
// QUIC tunnels between the routers and to the endpoints; raw GDP-in-UDP
// tunnels with GDP_FS_BENCH_RAW=1.
func BenchmarkModelLoad(b *testing.B) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		b.Skipf("FUSE unavailable: %v", err)
	}
	dropCaches(b)
	dir := b.TempDir()
	loader := filepath.Join(dir, "loader")
	if out, err := exec.Command(goBin(), "build", "-o", loader, "./testdata/loader").CombinedOutput(); err != nil {
		b.Fatalf("build the loader: %v\n%s", err, out)
	}
	model := filepath.Join(dir, "model.gdpt")
	writeModel(b, model)
	st, _ := os.Stat(model)
	size := st.Size()

	raw := benchRawTunnels()
	s := newSetupTunnels(b, 1, 1, raw)
	b.Logf("router link and attachments: %s", map[bool]string{false: "QUIC tunnels", true: "raw GDP-in-UDP tunnels (GDP_FS_BENCH_RAW=1)"}[raw])
	fh, err := os.Open(model)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	putStart := time.Now()
	if _, err := s.fw.Put(ctx, "models/model.gdpt", fh, fs.PutOptions{}); err != nil {
		b.Fatal(err)
	}
	_ = fh.Close()
	b.Logf("put %d bytes in %s (%.1f MB/s)", size, time.Since(putStart).Round(time.Millisecond), float64(size)/1e6/time.Since(putStart).Seconds())

	// The client that mounts is attached to router b; the replica to a.
	reader := s.w.user(s.b, "mount user")
	// cold restarts the replica with every cache dropped, and returns
	// once a fresh FS opens through the mount user's router.
	cold := func() {
		s.rs[0].stop()
		dropCaches(b)
		s.w.start(s.rs[0])
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			octx, ocancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := reader.Info(octx, s.name, s.name)
			ocancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("the restarted replica is not reachable: %v", err)
			}
		}
	}
	mounted := func() (string, func()) {
		f, err := fs.Open(ctx, reader, s.name, fs.Options{})
		if err != nil {
			b.Fatal(err)
		}
		mdir := b.TempDir()
		m, err := mount.New(mdir, f, mount.Options{})
		if err != nil {
			b.Skipf("FUSE unavailable: %v", err)
		}
		return filepath.Join(mdir, "models", "model.gdpt"), func() { _ = m.Close() }
	}
	var local, viaMount, rawLocal, rawMount, rawGet, cpuLocal, cpuMount time.Duration
	b.ResetTimer()
	for range b.N {
		cold()
		c0 := cpuTime()
		l, sumL := runLoader(b, loader, model)
		cpuLocal += cpuTime() - c0
		cold()
		p, done := mounted()
		c0 = cpuTime()
		mt, sumM := runLoader(b, loader, p)
		cpuMount += cpuTime() - c0
		done()
		if sumL != sumM {
			b.Fatalf("the loader read other floats through the mount: sum %s, local %s", sumM, sumL)
		}
		local += l
		viaMount += mt

		cold()
		rawLocal += rawRead(b, model)
		cold()
		p, done = mounted()
		rawMount += rawRead(b, p)
		done()
		cold()
		start := time.Now()
		f, err := fs.Open(ctx, reader, s.name, fs.Options{})
		if err != nil {
			b.Fatal(err)
		}
		fl, err := f.Open(ctx, "models/model.gdpt")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := fl.WriteToContext(ctx, io.Discard); err != nil {
			b.Fatal(err)
		}
		_ = fl.Close()
		rawGet += time.Since(start)
	}
	n := float64(b.N)
	mbps := func(d time.Duration) float64 { return float64(size) / 1e6 / (d.Seconds() / n) }
	b.ReportMetric(local.Seconds()/n, "local-load-s")
	b.ReportMetric(viaMount.Seconds()/n, "mount-load-s")
	b.ReportMetric(viaMount.Seconds()/local.Seconds(), "load-ratio")
	b.ReportMetric(mbps(rawLocal), "local-MB/s")
	b.ReportMetric(mbps(rawMount), "mount-MB/s")
	b.ReportMetric(mbps(rawGet), "get-MB/s")
	b.ReportMetric(rawMount.Seconds()/rawLocal.Seconds(), "mount-raw-ratio")
	b.ReportMetric(cpuLocal.Seconds()/n, "local-load-cpu-s")
	b.ReportMetric(cpuMount.Seconds()/n, "mount-load-cpu-s")
	b.ReportMetric(rawGet.Seconds()/rawLocal.Seconds(), "get-raw-ratio")
	b.Logf("load CPU (loader + routers, server and mount in this process): local %.2fs, mount %.2fs (%.1f ms per MB through the mount); load average %s",
		cpuLocal.Seconds()/n, cpuMount.Seconds()/n, cpuMount.Seconds()/n*1000/(float64(size)/1e6), loadAvg())
	b.Logf("model %d bytes, %d round(s): load local %.2fs, mount %.2fs (%.2fx); raw read local %.0f MB/s, mount %.0f MB/s (%.2fx time), fs get %.0f MB/s (%.2fx time)",
		size, b.N, local.Seconds()/n, viaMount.Seconds()/n, viaMount.Seconds()/local.Seconds(),
		mbps(rawLocal), mbps(rawMount), rawMount.Seconds()/rawLocal.Seconds(), mbps(rawGet), rawGet.Seconds()/rawLocal.Seconds())
}

// benchRawTunnels: GDP_FS_BENCH_RAW=1 links the benchmark's routers, and
// attaches its endpoints, over raw GDP-in-UDP tunnels (router.Config
// raw_listen, PROTOCOL.md §4.4: the fast path between routers) instead of
// QUIC tunnels.
func benchRawTunnels() bool { return os.Getenv("GDP_FS_BENCH_RAW") == "1" }

func goBin() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// BenchmarkBulkVsRead: `gdp fs get` of a 24 MB file from a replica behind
// another router, over bulk read streams (Options.Bulk 16) and over READ
// PDUs only (Bulk -1), alternating rounds in one run (the machine's load
// changes). Reports both rates, their ratio and the CPU per MB of each
// (routers, server and reader all run in this process).
func BenchmarkBulkVsRead(b *testing.B) {
	s := newSetup(b, 1, 1)
	src := make([]byte, 24<<20)
	for i := range src {
		src[i] = byte(i * 31)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	if _, err := s.fw.Put(ctx, "f.bin", bytes.NewReader(src), fs.PutOptions{}); err != nil {
		b.Fatal(err)
	}
	reader := s.w.user(s.b, "bulk reader")
	get := func(bulk int) (time.Duration, time.Duration) {
		c0, t0 := cpuTime(), time.Now()
		f, err := fs.Open(ctx, reader, s.name, fs.Options{Bulk: bulk})
		if err != nil {
			b.Fatal(err)
		}
		fl, err := f.Open(ctx, "f.bin")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := fl.WriteToContext(ctx, io.Discard); err != nil {
			b.Fatal(err)
		}
		_ = fl.Close()
		if bulk > 0 && f.Stats.BulkFallbacks.Load() != 0 {
			b.Logf("bulk round: %d fallbacks", f.Stats.BulkFallbacks.Load())
		}
		return time.Since(t0), cpuTime() - c0
	}
	var bw, bc, rw, rc time.Duration
	rounds := max(b.N, 4)
	b.ResetTimer()
	for i := 0; i < rounds; i++ {
		if i%2 == 0 {
			w, c := get(16)
			bw, bc = bw+w, bc+c
			w, c = get(-1)
			rw, rc = rw+w, rc+c
		} else {
			w, c := get(-1)
			rw, rc = rw+w, rc+c
			w, c = get(16)
			bw, bc = bw+w, bc+c
		}
	}
	mb := float64(len(src)) / 1e6 * float64(rounds)
	b.ReportMetric(mb/bw.Seconds(), "bulk-MB/s")
	b.ReportMetric(mb/rw.Seconds(), "read-MB/s")
	b.ReportMetric(rw.Seconds()/bw.Seconds(), "bulk-speedup")
	b.ReportMetric(bc.Seconds()*1000/mb, "bulk-cpu-ms/MB")
	b.ReportMetric(rc.Seconds()*1000/mb, "read-cpu-ms/MB")
	b.Logf("load average %s", loadAvg())
}
