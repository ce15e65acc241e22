// Command mkdata is the memory half of make handoff-data
// (scripts/handoff-data.sh): it boots the dataset guest on DIR/disk-mod.img
// and writes DIR/mem-base.img (the RAM of the booted, idle guest) and
// DIR/mem-mod.img (the same RAM after the guest's workload), then
// DIR/info.txt with what changed. Files that exist are kept.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/handoffd"
)

func main() {
	out := flag.String("out", "/var/tmp/gdpnet-handoff-data", "dataset directory (holds disk-mod.img)")
	memMiB := flag.Int("mem-mib", 256, "guest RAM, MiB")
	kernelDir := flag.String("kernel-dir", os.Getenv("GDP_HANDOFF_KERNEL_DIR"), "guest kernel (scripts/handoff-kernel.sh)")
	note := flag.String("note", "", "first line of info.txt")
	flag.Parse()
	if err := run(*out, *memMiB, *kernelDir, *note); err != nil {
		fmt.Fprintln(os.Stderr, "mkdata:", err)
		os.Exit(1)
	}
}

func run(out string, memMiB int, kernelDir, note string) error {
	disk := filepath.Join(out, "disk-mod.img")
	if _, err := os.Stat(disk); err != nil {
		return fmt.Errorf("no modified disk (run scripts/handoff-data.sh): %w", err)
	}
	memBase, memMod := filepath.Join(out, "mem-base.img"), filepath.Join(out, "mem-mod.img")
	_, e1 := os.Stat(memBase)
	_, e2 := os.Stat(memMod)
	if e1 != nil || e2 != nil {
		if err := boot(out, disk, memMiB, kernelDir, memBase, memMod); err != nil {
			return err
		}
	}
	return info(out, note)
}

func boot(out, disk string, memMiB int, kernelDir, memBase, memMod string) error {
	dir := filepath.Join(out, "work", "guest")
	os.RemoveAll(dir)
	log, _ := zap.NewDevelopment()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	g, err := handoffd.StartDataGuest(ctx, handoffd.DataGuestConfig{Dir: dir, Disk: disk, ReadOnly: true, MemoryMiB: memMiB,
		KernelDir: kernelDir, Logger: log})
	if err != nil {
		return err
	}
	defer g.Close()
	t0 := time.Now()
	if _, err := g.Wait("GUEST-READY", 5*time.Minute); err != nil {
		return err
	}
	fmt.Printf("mkdata: guest booted in %s\n", time.Since(t0).Round(time.Millisecond))
	snap := func(path string) error {
		if _, err := g.Q.Run("stop", nil); err != nil {
			return err
		}
		if err := copyFile(g.Cfg.MemPath, path+".tmp"); err != nil {
			return err
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			return err
		}
		_, err := g.Q.Run("cont", nil)
		return err
	}
	if err := snap(memBase); err != nil {
		return fmt.Errorf("base memory: %w", err)
	}
	if err := g.Send("go"); err != nil {
		return err
	}
	if _, err := g.Wait("WORKLOAD-DONE", 15*time.Minute); err != nil {
		return err
	}
	fmt.Printf("mkdata: workload done after %s\n", time.Since(t0).Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	if err := snap(memMod); err != nil {
		return fmt.Errorf("modified memory: %w", err)
	}
	g.Q.Quit()
	os.RemoveAll(dir)
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	o, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(o, in); err != nil {
		o.Close()
		return err
	}
	return o.Close()
}

// info counts, per image pair, the 4 KiB blocks that differ, are zero, or
// exist only in the modified image.
func info(out, note string) error {
	var b bytes.Buffer
	if note != "" {
		fmt.Fprintln(&b, note)
	}
	for _, pair := range [][2]string{{"disk-base.img", "disk-mod.img"}, {"mem-base.img", "mem-mod.img"}} {
		st, err := handoffd.CompareImages(filepath.Join(out, pair[0]), filepath.Join(out, pair[1]))
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s -> %s: %d bytes, %d blocks of 4 KiB differ (%.1f MiB), %d of them zero in %s\n",
			pair[0], pair[1], st.Size, st.Changed, float64(st.Changed)*4096/(1<<20), st.ChangedZero, pair[1])
	}
	return os.WriteFile(filepath.Join(out, "info.txt"), b.Bytes(), 0o644)
}
