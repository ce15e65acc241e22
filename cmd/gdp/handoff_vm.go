package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/gdpnet/gdpnet/handoffd"
)

type handoffVMOpts struct {
	handoffSendOpts
	qmp                  string
	diskOverlay          string
	discard              bool
	kernelBase, initrdID string
	appendLine, machine  string
	stateDir             string
	quitSource           bool
}

func handoffVMCmd(cache *string) *cobra.Command {
	vm := &cobra.Command{Use: "vm", Short: "Hand off a running QEMU VM (started by the operator) to a cloudlet agent",
		Example: "  gdp handoff vm send --qmp /run/vm1/qmp.sock --memory-base 77b0e4d2 --disk-overlay vm1.qcow2 --disk-base 3f2a9c1e --to AGENT_NAME"}
	o := &handoffVMOpts{}
	send := &cobra.Command{
		Use:   "send",
		Short: "Hand a running QEMU VM to a cloudlet agent through its QMP socket",
		Long: `vm send hands off a VM that QEMU runs already, started by the operator, through
its QMP socket (-qmp unix:SOCKET,server=on,wait=off; a second -qmp socket
leaves the first to its owner). The VM's RAM must be a shared file
(-object memory-backend-file,id=mem,size=…,mem-path=FILE,share=on -machine
…,memory-backend=mem): send finds the file and the RAM size over QMP, and the
vCPU count. Its disk, if any, is a qcow2 overlay over a raw base
(qemu-img create -f qcow2 -b BASE -F raw -o cluster_size=4096 OVERLAY); the
overlay's backing file must be the cached --disk-base, which send checks.

While the VM runs, pre-copy rounds send the RAM file's and the overlay's
changed blocks; then the VM is stopped, its device state taken and the last
round sent. When the destination agent (gdp handoffd with resume: true and
this sender in senders:) has verified and committed everything, the source VM
stays paused (--quit-source ends it); if anything fails after the stop — an
interruption (SIGINT, SIGTERM, SIGHUP) included — before the destination was
told to run its copy, it runs on and the handoff can be retried (--id). Progress, summary, --report, --plot
and --json as for gdp handoff send.`,
		Example: `  gdp handoff vm send --qmp /run/vm1/qmp.sock --memory-base 77b0e4d2 \
      --disk-overlay vm1.qcow2 --disk-base 3f2a9c1e --kernel-base 1b2c3d4e --initrd-base 5f6a7b8c \
      --append "console=ttyS0" --to AGENT_NAME --identity operator --report r.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd, *cache) },
	}
	f := send.Flags()
	f.StringVar(&o.qmp, "qmp", "", "the VM's QMP socket (unix)")
	f.StringVar(&o.memoryBase, "memory-base", "", "base of the RAM file (cache ID or prefix): the RAM of the booted, idle base VM")
	f.StringVar(&o.diskOverlay, "disk-overlay", "", "the VM's disk: a qcow2 overlay over --disk-base (none: a VM without a disk)")
	f.BoolVar(&o.discard, "discard", false, "its disk's drive passes the guest's discards on (discard=unmap): the destination attaches it the same way, so the guest's fstrim keeps freeing blocks there")
	f.StringVar(&o.diskBase, "disk-base", "", "base of the disk (cache ID or prefix)")
	f.StringVar(&o.kernelBase, "kernel-base", "", "the kernel the VM booted (cache ID or prefix): the destination boots the same")
	f.StringVar(&o.initrdID, "initrd-base", "", "its initrd (cache ID or prefix)")
	f.StringVar(&o.appendLine, "append", "", "its kernel command line")
	f.StringVar(&o.machine, "machine", "pc", "its machine type (-machine)")
	f.StringVar(&o.stateDir, "state-dir", "", "where QEMU writes the device state (default: a temporary directory)")
	f.BoolVar(&o.quitSource, "quit-source", false, "end the source QEMU once the destination committed (default: leave it paused)")
	o.transferFlags(send)
	vm.AddCommand(send)
	return vm
}

func (o *handoffVMOpts) run(cmd *cobra.Command, cacheDir string) error {
	if o.qmp == "" || o.memoryBase == "" {
		return fmt.Errorf("--qmp and --memory-base are required")
	}
	if err := o.checkID(); err != nil {
		return err
	}
	if (o.diskOverlay == "") != (o.diskBase == "") {
		return fmt.Errorf("--disk-overlay and --disk-base go together")
	}
	if o.discard && o.diskOverlay == "" {
		return fmt.Errorf("--discard describes the VM's disk: give --disk-overlay and --disk-base too")
	}
	if (o.to == "") == (o.tcp == "") {
		return fmt.Errorf("give exactly one of --to and --tcp")
	}
	cache, err := handoffd.OpenBaseCache(cacheDir)
	if err != nil {
		return err
	}
	resolve := func(flag, id string) (string, error) {
		if id == "" {
			return "", nil
		}
		full, err := cache.Resolve(id)
		if err != nil {
			return "", fmt.Errorf("--%s: %w", flag, err)
		}
		return full, nil
	}
	memBase, err := resolve("memory-base", o.memoryBase)
	if err != nil {
		return err
	}
	meta := handoffd.VMMeta{Machine: o.machine, Append: o.appendLine, Disk: o.diskOverlay != "", Discard: o.discard}
	if meta.Kernel, err = resolve("kernel-base", o.kernelBase); err != nil {
		return err
	}
	if meta.Initrd, err = resolve("initrd-base", o.initrdID); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "gdp-handoff-vm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	stateDir := o.stateDir
	if stateDir == "" {
		stateDir = work
	}
	// SIGINT, SIGTERM and SIGHUP end the send; if that comes after the VM
	// was stopped and before the destination was told to run its copy,
	// the VM is resumed before the process exits (handoffd.Send).
	ctx, stop := interruptContext(cmd.Context())
	defer stop()
	q, err := handoffd.AttachQEMU(ctx, o.qmp, stateDir, nil)
	if err != nil {
		return err
	}
	defer q.Kill() // disconnects; the process is the operator's
	ram, err := q.RAM()
	if err != nil {
		return err
	}
	meta.MemoryMiB = int(ram.Size >> 20)
	if meta.CPUs, err = q.CPUs(); err != nil {
		return err
	}
	h := &handoffd.Handoff{VM: q, Meta: meta, Images: []handoffd.Image{{Name: "memory", Base: memBase, Path: ram.Path}}}
	if o.diskOverlay != "" {
		diskBase, err := resolve("disk-base", o.diskBase)
		if err != nil {
			return err
		}
		if err := checkBacking(cache, o.diskOverlay, diskBase); err != nil {
			return err
		}
		// QEMU follows the guest's writes (dirty bitmaps): from the second
		// round on, the final one included, only what it wrote since the
		// round before is copied and scanned.
		top := &handoffd.QCOW2Top{Top: o.diskOverlay, Raw: filepath.Join(work, "disk.raw"), QEMU: q}
		defer top.Close()
		defer func() {
			if err := top.BitmapErr(); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "gdp: the disk's dirty bitmap was not available (%v): each round, the final one included, copied and scanned the whole overlay, a longer pause\n", err)
			}
		}()
		h.Images = append(h.Images, handoffd.Image{Name: "disk", Base: diskBase, Path: top.Raw, Dirty: top.Extents, Refresh: top.Refresh, Changed: top.Changed})
	}
	rep, err := o.transfer(ctx, cmd, cache, h)
	if err != nil {
		return err
	}
	if o.quitSource {
		q.Quit()
	} else if !o.json {
		fmt.Fprintf(cmd.OutOrStdout(), "the source VM stays paused (the destination runs it now): end it with QMP quit, or --quit-source next time\n")
	}
	return writeHandoffReport(cmd, rep, o.report, o.plot, o.json)
}

// checkBacking makes sure the overlay's backing file is the cached base:
// blocks outside the overlay are sent as "unchanged against the base", so a
// different backing file would hand off a different disk.
func checkBacking(cache *handoffd.BaseCache, overlay, baseID string) error {
	out, err := exec.Command("qemu-img", "info", "-U", "--output=json", overlay).Output()
	if err != nil {
		return fmt.Errorf("qemu-img info %s: %w", overlay, err)
	}
	var info struct {
		Format  string `json:"format"`
		Backing string `json:"full-backing-filename"`
		BackFmt string `json:"backing-filename-format"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		return fmt.Errorf("qemu-img info %s: %w", overlay, err)
	}
	if info.Format != "qcow2" || info.Backing == "" || (info.BackFmt != "" && info.BackFmt != "raw") {
		return fmt.Errorf("--disk-overlay %s: want a qcow2 overlay over a raw base (format %q, backing %q %q)", overlay, info.Format, info.Backing, info.BackFmt)
	}
	id, err := handoffd.ImageID(info.Backing)
	if err != nil {
		return fmt.Errorf("--disk-overlay %s: its backing file: %w", overlay, err)
	}
	if id != baseID {
		return fmt.Errorf("--disk-overlay %s: its backing file %s is not the cached base %s (its content id is %s)", overlay, info.Backing, baseID[:12], id[:12])
	}
	return nil
}
