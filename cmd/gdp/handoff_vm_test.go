package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/handoffd"
)

// vmSendInit boots, says GUEST-READY, writes known data to RAM and its disk,
// then counts on the console every 300 ms. It reads nothing from the
// console: the test follows it in QEMU's serial log file.
const vmSendInit = handoffd.GuestBoot + `echo GUEST-READY
sleep 2
seq 1 20000 | sed 's/^/vm-send-known-data-/' > /tmp/mem.dat
dd if=/tmp/mem.dat of=/dev/vda bs=4096 seek=64 conv=notrunc 2>/dev/null
sync
echo WORKLOAD-DONE
i=0; while :; do i=$((i+1)); echo "tick $i"; usleep 300000; done
`

// vmGuestFiles finds QEMU, qemu-img, a static busybox and the guest kernel
// with its virtio modules (handoffd.FindGuestFiles); it skips, saying
// which, when one is missing.
func vmGuestFiles(t *testing.T) (kernel string, mods map[string]string, busybox string) {
	t.Helper()
	kernel, mods, busybox, err := handoffd.FindGuestFiles(os.Getenv("GDP_HANDOFF_KERNEL_DIR"))
	if err != nil {
		t.Skipf("%v: the VM handoff CLI test cannot run", err)
	}
	return kernel, mods, busybox
}

var tickLine = regexp.MustCompile(`(?m)^tick ([0-9]+)\r?$`)

// lastTickIn is the last "tick N" in a serial log (0: none yet).
func lastTickIn(path string) int {
	b, _ := os.ReadFile(path)
	m := tickLine.FindAllSubmatch(b, -1)
	if len(m) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(string(m[len(m)-1][1]))
	return n
}

// TestHandoffVMSendCLI: an operator's own QEMU VM (RAM in a shared file, a
// qcow2 overlay disk, a second QMP socket for gdp) handed off with
// `gdp handoff vm send --qmp` to a real `gdp handoffd` (resume: true) by its
// name through a real router; the agent resumes the VM and its counter
// carries on there, the source stays paused, the JSON report is printed.
func TestHandoffVMSendCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gdp, boots a VM and runs daemons")
	}
	kernel, mods, busybox := vmGuestFiles(t)
	e := newOpsEnv(t)
	e.mustGDP("cert", "new-domain", "--alias", "acme", "--description", "vm send")
	names := map[string]string{}
	for _, a := range []struct{ kind, alias string }{{"router", "router"}, {"client", "handoffd"}, {"client", "operator"}} {
		e.mustGDP("cert", "keygen", "--kind", a.kind, "--alias", a.alias)
		out := e.mustGDP("cert", "issue", "member", "--domain", "acme", "--member", a.alias+".meta", "--duration", "48h", "--out", a.alias+".member")
		_, after, _ := strings.Cut(out, "-> ")
		names[a.alias] = nameRe.FindString(after)
	}
	listen, admin := udpPort(t), freePort(t)
	rt := e.start("router", "router", "--config", e.deployConfig("router", map[string]any{"listen": listen, "admin": admin,
		"member_cert": "router.member", "domain": "acme.meta"}))
	rt.waitLog(`"router up"`)

	// The guest and the bases both cloudlets hold.
	dir := e.work
	initrd := filepath.Join(dir, "initrd.gz")
	if err := handoffd.BuildInitramfs(initrd, busybox, mods, vmSendInit); err != nil {
		t.Fatal(err)
	}
	baseDisk := filepath.Join(dir, "base-disk.img")
	disk := make([]byte, 8<<20)
	for i := 0; i < len(disk); i += 7 {
		disk[i] = byte('a' + i%23)
	}
	os.WriteFile(baseDisk, disk, 0o644)
	cacheA, cacheB := filepath.Join(dir, "cache-a"), filepath.Join(dir, "cache-b")
	add := func(path string) string {
		id := strings.TrimSpace(e.mustGDP("handoff", "base", "add", "--cache", cacheA, path))
		e.mustGDP("handoff", "base", "add", "--cache", cacheB, path)
		return id
	}
	kernelID, initrdID, diskID := add(kernel), add(initrd), add(baseDisk)
	overlay := filepath.Join(dir, "vm.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-b", baseDisk, "-F", "raw", "-o", "cluster_size=4096", overlay).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}

	// The operator's VM: QEMU with its RAM in a shared file and a second
	// QMP socket for gdp.
	appendLine := "console=ttyS0 quiet loglevel=1 panic=-1 mitigations=off"
	vmDir := filepath.Join(dir, "vm-a")
	os.MkdirAll(vmDir, 0o755)
	opSock := filepath.Join(vmDir, "gdp-qmp.sock")
	ram := filepath.Join(dir, "ram-a")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	qa, err := handoffd.StartQEMU(ctx, handoffd.QEMUConfig{Dir: vmDir, MemoryMiB: 128, Kernel: kernel, Initrd: initrd, Append: appendLine,
		MemPath: ram, Disk: overlay, DiskFmt: "qcow2", ExtraArgs: []string{"-qmp", "unix:" + opSock + ",server=on,wait=off"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(qa.Kill)
	waitUntil(t, "the guest to boot", 150*time.Second, func() bool { b, _ := os.ReadFile(qa.SerialLog); return bytes.Contains(b, []byte("GUEST-READY")) })
	// The base memory: the booted guest's RAM before its workload.
	if _, err := qa.Run("stop", nil); err != nil {
		t.Fatal(err)
	}
	baseMem := filepath.Join(dir, "base-mem.img")
	if b, err := os.ReadFile(ram); err != nil || os.WriteFile(baseMem, b, 0o644) != nil {
		t.Fatalf("copy the RAM file: %v", err)
	}
	memID := add(baseMem)
	if _, err := qa.Run("cont", nil); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the guest's workload", 90*time.Second, func() bool { return lastTickIn(qa.SerialLog) >= 3 })

	// The destination agent, resuming VMs from the operator only.
	recv := filepath.Join(dir, "received")
	d := e.start("handoffd", "handoffd", "--config", e.deployConfig("handoffd", map[string]any{"router": listen, "admin": admin,
		"router_name": "", "identity": "handoffd", "member_cert": "handoffd.member", "domain": "acme.meta", "cache": cacheB,
		"dir": recv, "resume": true, "senders": []string{names["operator"]}, "metrics": "off"}))
	d.waitLog(`"handoff agent on the overlay"`)
	t.Cleanup(func() {
		// The resumed VM is the agent's child and outlives it: end the
		// agent's children by their ids before the agent is killed.
		// Each thread lists the children it started.
		var b []byte
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", d.cmd.Process.Pid))
		for _, f := range tasks {
			c, _ := os.ReadFile(f)
			b = append(append(b, c...), ' ')
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				if p, err := os.FindProcess(c); err == nil {
					p.Kill()
				}
			}
		}
	})

	// A disk base that is not the overlay's backing file is refused before
	// the VM is touched.
	if out, err := e.gdp("handoff", "vm", "send", "--cache", cacheA, "--qmp", opSock, "--memory-base", memID, "--disk-overlay", overlay,
		"--disk-base", initrdID, "--tcp", "127.0.0.1:9", "--progress", "never"); err == nil || !strings.Contains(out, "is not the cached base") {
		t.Fatalf("vm send with the wrong disk base: %v\n%s", err, out)
	}
	if st, err := qa.Status(); err != nil || st != "running" {
		t.Fatalf("source VM after a refused send: %q, %v; want running", st, err)
	}
	sendArgs := []string{"handoff", "vm", "send", "--cache", cacheA, "--qmp", opSock, "--memory-base", memID[:12],
		"--disk-overlay", overlay, "--disk-base", diskID, "--kernel-base", kernelID, "--initrd-base", initrdID, "--append", appendLine,
		"--to", names["handoffd"], "--router", listen, "--admin", admin, "--identity", "operator", "--member", "operator.member",
		"--domain", "acme.meta", "--json", "--progress", "never", "--id", "vm1"}

	// vm send stopped by the operator's service manager (SIGTERM) once it
	// paused the VM, before the destination committed: the source VM runs
	// on, the destination keeps nothing, one line says so and how to
	// retry, and the retry under the same --id (below) hands it off.
	// At 1 Mbit/s the final round alone (≥ 360 KB of device state) takes
	// ≥ 2.9 s, the window the SIGTERM must land in (at 4 Mbit/s it was
	// 0.3–0.6 s, which a loaded CI machine can miss).
	interruptedSend(t, e, qa, d, recv, append(sendArgs[:len(sendArgs):len(sendArgs)], "--link-mbit", "1"))

	out := e.mustGDP(sendArgs...)
	var rep handoffd.Report
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	if rep.StateBytes == 0 || len(rep.Rounds) == 0 || rep.DowntimeSec <= 0 || len(rep.Images) != 2 {
		t.Fatalf("report: state %d bytes, %d rounds, downtime %.2fs, %d images", rep.StateBytes, len(rep.Rounds), rep.DowntimeSec, len(rep.Images))
	}
	if st, err := qa.Status(); err != nil || st == "running" {
		t.Fatalf("source VM after the handoff: %q, %v; want it stopped", st, err)
	}
	tickA := lastTickIn(qa.SerialLog)
	serialB := filepath.Join(recv, rep.ID, "vm", "serial.log")
	waitUntil(t, "the counter to carry on at the destination", 90*time.Second, func() bool { return lastTickIn(serialB) > tickA+2 })
	t.Logf("handoff: %d rounds, %d changed, %d on the wire, state %d, total %.2fs, downtime %.2fs; counter A %d -> B %d",
		len(rep.Rounds), rep.ChangedBytes, rep.WireBytes, rep.StateBytes, rep.TotalSec, rep.DowntimeSec, tickA, lastTickIn(serialB))
}

// interruptedSend runs `gdp handoff vm send` (args, --id vm1), SIGTERMs it
// the moment the source VM (qa) pauses for the final round and checks that
// the sender resumed it before exiting: its counter carries on, the agent
// d neither committed vm1 nor started a VM, and the sender's one line says
// the VM runs again and to send again with --id vm1.
func interruptedSend(t *testing.T, e *opsEnv, qa *handoffd.QEMU, d *opsDaemon, recv string, args []string) {
	t.Helper()
	s := e.start("vm-send-interrupted", args...)
	var paused time.Time
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(2 * time.Millisecond) {
		if st, err := qa.Status(); err == nil && st != "running" {
			paused = time.Now()
			break
		}
		if !s.running() || time.Now().After(deadline) {
			t.Fatalf("the send ended (%v) or 3 min passed before the source VM paused", s.err)
		}
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatal("vm send did not exit within 30 s of SIGTERM")
	}
	t.Logf("SIGTERM at the pause; vm send exited %s after it: %v", time.Since(paused).Round(time.Millisecond), s.err)
	if _, err := os.Stat(filepath.Join(recv, "vm1")); err == nil {
		t.Fatal("the destination committed vm1: the SIGTERM came too late to test the interrupted send (slow machine?)")
	}
	if s.err == nil {
		t.Fatal("vm send exited 0 after SIGTERM")
	}
	if st, err := qa.Status(); err != nil || st != "running" {
		t.Fatalf("source VM after vm send was stopped by SIGTERM: %q, %v; want running", st, err)
	}
	tick := lastTickIn(qa.SerialLog)
	waitUntil(t, "the source VM's counter to carry on", 60*time.Second, func() bool { return lastTickIn(qa.SerialLog) > tick+1 })
	n := 0
	s.mu.Lock()
	for _, l := range s.lines {
		if strings.Contains(l, "gdp: handoff vm1: interrupted by terminated") && strings.Contains(l, "the source VM runs again") &&
			strings.Contains(l, "send again with --id vm1") {
			n++
		}
	}
	s.mu.Unlock()
	if n != 1 {
		t.Errorf("vm send's lines saying it was interrupted, the VM runs again and how to retry: %d, want 1", n)
	}
	d.waitLog(`"handoff failed; nothing kept"`, "vm1")
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, l := range d.lines {
		if strings.Contains(l, "vm1") && (strings.Contains(l, `"handoff committed"`) || strings.Contains(l, "resumed")) {
			t.Errorf("the agent committed or resumed the interrupted handoff: %s", l)
		}
	}
}

// waitUntil polls cond for up to d (a guest under TCG on a loaded machine
// takes its time).
func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
