package handoffd

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
)

// GuestModules are the Debian cloud kernel's modules a busybox guest loads,
// in order, to see its virtio disk (ext4 is built in).
var GuestModules = []string{"virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci", "virtio_blk"}

// GuestBoot is the start of every busybox guest's /init: mount proc, sys
// and dev, load GuestModules, wait up to 10 s for the virtio disk. A guest
// appends its own workload.
const GuestBoot = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk; do insmod /lib/modules/$m.ko; done
i=0; while [ ! -b /dev/vda ] && [ $i -lt 200 ]; do usleep 50000; i=$((i+1)); done
`

// cpioNewc writes a newc cpio archive (what the kernel unpacks as its
// initramfs).
type cpioNewc struct {
	w   *bytes.Buffer
	ino int
}

func (c *cpioNewc) entry(name string, mode, rdevMaj, rdevMin int, data []byte) {
	c.ino++
	fmt.Fprintf(c.w, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdevMaj, rdevMin, len(name)+1, 0)
	c.w.WriteString(name)
	c.w.WriteByte(0)
	for c.w.Len()%4 != 0 {
		c.w.WriteByte(0)
	}
	c.w.Write(data)
	for c.w.Len()%4 != 0 {
		c.w.WriteByte(0)
	}
}

// BuildInitramfs writes a gzip'd initramfs to path: a static busybox as
// /bin/busybox, the kernel modules (name -> .ko path) of GuestModules under
// /lib/modules/NAME.ko, and init as /init.
func BuildInitramfs(path, busybox string, mods map[string]string, init string) error {
	c := &cpioNewc{w: &bytes.Buffer{}}
	for _, d := range []string{"bin", "dev", "proc", "sys", "tmp", "lib", "lib/modules", "mnt"} {
		c.entry(d, 0o040755, 0, 0, nil)
	}
	c.entry("dev/console", 0o020600, 5, 1, nil)
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	c.entry("bin/busybox", 0o100755, 0, 0, bb)
	for _, m := range GuestModules {
		b, err := os.ReadFile(mods[m])
		if err != nil {
			return fmt.Errorf("initramfs: module %s: %w", m, err)
		}
		c.entry("lib/modules/"+m+".ko", 0o100644, 0, 0, b)
	}
	c.entry("init", 0o100755, 0, 0, []byte(init))
	c.entry("TRAILER!!!", 0, 0, 0, nil)
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestSpeed)
	zw.Write(c.w.Bytes())
	zw.Close()
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	return nil
}
