//go:build linux

package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
)

// CleanReport is what CleanNetns removed.
type CleanReport struct {
	// Runs whose leftovers were removed, and live runs left alone.
	Runs, Live []string
	// Killed processes (pid and what ran).
	Killed []string
	// Namespaces and root-namespace veths removed.
	Namespaces, Veths []string
	// StateFiles and scratch directories removed.
	StateFiles, Dirs []string
}

// Empty says nothing was removed.
func (c *CleanReport) Empty() bool {
	return len(c.Runs)+len(c.Killed)+len(c.Namespaces)+len(c.Veths)+len(c.StateFiles)+len(c.Dirs) == 0
}

// String lists what was removed, one line each.
func (c *CleanReport) String() string {
	var b strings.Builder
	for _, r := range c.Live {
		fmt.Fprintf(&b, "left alone: %s\n", r)
	}
	for _, k := range c.Killed {
		fmt.Fprintf(&b, "killed process %s\n", k)
	}
	for _, n := range c.Namespaces {
		fmt.Fprintf(&b, "removed namespace %s\n", n)
	}
	for _, v := range c.Veths {
		fmt.Fprintf(&b, "removed veth %s\n", v)
	}
	for _, d := range c.Dirs {
		fmt.Fprintf(&b, "removed directory %s\n", d)
	}
	for _, f := range c.StateFiles {
		fmt.Fprintf(&b, "removed state file %s\n", f)
	}
	if c.Empty() {
		b.WriteString("nothing to clean\n")
	}
	return b.String()
}

// testHookCleanListed runs in CleanNetns between its listing of the
// namespaces and its reading of the state files.
var testHookCleanListed func()

var vethName = regexp.MustCompile(`^` + VethPrefix + `[0-9a-f]{4}[hn][0-9]+$`)

// CleanNetns removes what netns runs left behind: for every run whose
// simulator is gone (its state file names a pid that is dead or reused),
// the processes in its namespaces, its namespaces (and with them their
// veths), its scratch directory and its state file; namespaces named
// NetnsPrefix… that no state file names (the run died before or after
// writing it). With all it removes live runs' resources too, and every
// veth named VethPrefix… in this namespace.
func CleanNetns(all bool) (*CleanReport, error) {
	if err := NetnsAvailable(); err != nil {
		return nil, err
	}
	rep := &CleanReport{}
	var errs []error
	// The namespaces are listed before the state files are read: a run
	// writes its state file before it makes a namespace, so every
	// namespace listed here of a run that is live is named by a state file
	// read below. Listed after (as it was), a run that started in between
	// lost its namespaces to this clean (its state file came too late to
	// be read, its namespaces in time to be listed), and the longer the
	// clean spent killing a dead run's processes the wider that window.
	ents, _ := os.ReadDir("/run/netns")
	if testHookCleanListed != nil {
		testHookCleanListed()
	}
	named := map[string]bool{} // namespaces some live run names
	files, _ := filepath.Glob(filepath.Join(StateDir, "*.json"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var st nsState
		if err := json.Unmarshal(b, &st); err != nil || st.Run == "" {
			errs = append(errs, fmt.Errorf("%s: not a state file: %v", f, err))
			continue
		}
		live := st.PID != 0 && st.PIDStart != 0 && procStart(st.PID) == st.PIDStart
		if live && !all {
			rep.Live = append(rep.Live, fmt.Sprintf("run %s (simulator pid %d is running)", st.Run, st.PID))
			for _, n := range st.Namespaces {
				named[n] = true
			}
			continue
		}
		rep.Runs = append(rep.Runs, st.Run)
		for _, p := range st.Procs {
			if p.Start != 0 && procStart(p.PID) == p.Start {
				if killWait(p.PID) {
					rep.Killed = append(rep.Killed, fmt.Sprintf("%d (router %s of run %s)", p.PID, p.Node, st.Run))
				}
			}
		}
		for _, n := range st.Namespaces {
			if err := cleanNS(n, rep); err != nil {
				errs = append(errs, err)
			}
		}
		if st.Dir != "" && strings.Contains(st.Dir, "gdp-sim-") {
			if _, err := os.Stat(st.Dir); err == nil {
				if err := os.RemoveAll(st.Dir); err != nil {
					errs = append(errs, err)
				} else {
					rep.Dirs = append(rep.Dirs, st.Dir)
				}
			}
		}
		if err := os.Remove(f); err != nil {
			errs = append(errs, err)
		} else {
			rep.StateFiles = append(rep.StateFiles, f)
		}
	}
	// Namespaces no live run names.
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), NetnsPrefix) && !named[e.Name()] {
			if err := cleanNS(e.Name(), rep); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if all {
		links, err := netlink.LinkList()
		if err != nil {
			errs = append(errs, err)
		}
		for _, l := range links {
			if name := l.Attrs().Name; vethName.MatchString(name) {
				if err := netlink.LinkDel(l); err != nil {
					errs = append(errs, fmt.Errorf("veth %s: %w", name, err))
				} else {
					rep.Veths = append(rep.Veths, name)
				}
			}
		}
	}
	sort.Strings(rep.Namespaces)
	return rep, errors.Join(errs...)
}

// cleanNS kills every process in a named namespace and removes it.
func cleanNS(name string, rep *CleanReport) error {
	p := filepath.Join("/run/netns", name)
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return fmt.Errorf("namespace %s: %w", name, err)
	}
	for _, pid := range pidsInNS(st.Dev, st.Ino) {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if killWait(pid) {
			rep.Killed = append(rep.Killed, fmt.Sprintf("%d (%s, in %s)", pid, strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " ")), name))
		}
	}
	if err := deleteNS(name); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("namespace %s: %w", name, err)
	}
	rep.Namespaces = append(rep.Namespaces, name)
	return nil
}

// pidsInNS lists the processes whose network namespace is (dev, ino).
func pidsInNS(dev, ino uint64) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st) == nil && st.Ino == ino && st.Dev == dev {
			out = append(out, pid)
		}
	}
	return out
}

// killWait SIGKILLs pid and waits up to 5 s for it to be gone (or a
// zombie); false if it was not running (gone, or a zombie already).
func killWait(pid int) bool {
	if !procAlive(pid) {
		return false
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return false
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if !procAlive(pid) {
			break
		}
	}
	return true
}

// procAlive says whether pid runs (a zombie does not).
func procAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || !strings.HasPrefix(strings.TrimSpace(string(b[i+1:])), "Z")
}
