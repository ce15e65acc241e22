package handoffd

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestQCOW2TopRefresh: Refresh writes the overlay's own content out raw as
// qemu-img convert of the overlay without its backing file would: data
// clusters copied from their host offsets, zero clusters as zeros, the rest
// zeros; and again, updated in place, after the guest overwrote data,
// zero-wrote and discarded clusters that held data, and wrote new ones; and
// through qemu-img convert when a cluster is compressed (no host offset).
func TestQCOW2TopRefresh(t *testing.T) {
	for _, c := range []string{"qemu-img", "qemu-io"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("%s not installed (qemu-utils)", c)
		}
	}
	dir := t.TempDir()
	base, top := filepath.Join(dir, "base.raw"), filepath.Join(dir, "top.qcow2")
	b := make([]byte, 4<<20)
	for i := range b {
		b[i] = byte(i*7 + i>>12)
	}
	os.WriteFile(base, b, 0o644)
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v: %s", name, args, err, out)
		}
	}
	run("qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", "-o", "cluster_size=65536", top)
	d := &QCOW2Top{Top: top, Raw: filepath.Join(dir, "top.raw")}
	os.WriteFile(d.Raw, bytes.Repeat([]byte{9}, 8<<20), 0o644) // stale, from before: replaced
	want := func(step string) {
		t.Helper()
		ref := filepath.Join(dir, "ref.raw")
		spec := fmt.Sprintf(`json:{"driver":"qcow2","file":{"driver":"file","filename":%q},"backing":null}`, top)
		run("qemu-img", "convert", "-O", "raw", spec, ref)
		got, _ := os.ReadFile(d.Raw)
		exp, _ := os.ReadFile(ref)
		if !bytes.Equal(got, exp) {
			i := 0
			for i < min(len(got), len(exp)) && got[i] == exp[i] {
				i++
			}
			t.Fatalf("%s: Raw (%d bytes) differs from the overlay's content (%d bytes) first at %d", step, len(got), len(exp), i)
		}
	}
	io := func(cmds ...string) {
		t.Helper()
		args := []string{"-f", "qcow2"}
		for _, c := range cmds {
			args = append(args, "-c", c)
		}
		run("qemu-io", append(args, top)...)
	}
	// Clusters allocated out of guest order: their host offsets differ
	// from their guest offsets.
	io("write -P 0xab 1M 128k", "write -P 0x11 64k 4k", "write -z 2M 64k", "write -P 0x22 3M 64k")
	if err := d.Refresh(); err != nil {
		t.Fatal(err)
	}
	want("first refresh")
	// Overwrite data, zero-write and discard clusters that held data, new
	// data elsewhere.
	io("write -P 0xcd 1M 4k", "write -z 1088k 64k", "discard 3M 64k", "write -P 0x33 3584k 8k")
	if err := d.Refresh(); err != nil {
		t.Fatal(err)
	}
	want("second refresh")
	// A compressed cluster has no host offset of its own: convert.
	io("write -c -P 0x44 2560k 64k")
	if err := d.Refresh(); err != nil {
		t.Fatal(err)
	}
	want("compressed cluster")
}
