package main

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// doctor runs each daemon's own validation: the values the daemons used to
// refuse only once running (a log level, a port out of range, a bootstrap
// address without /p2p/) fail the config check, naming the key.
func TestDoctorRefusesWhatTheDaemonRefuses(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		role, yaml, want string
	}{
		{"router", "log:\n  level: verbose\n", `log level "verbose"`},
		{"router", "listen: 127.0.0.1:84090\n", `listen "127.0.0.1:84090"`},
		{"router", "admin: localhost\n", `admin "localhost"`},
		{"router", "resolver:\n  mode: dht\n  bootstrap: [/ip4/127.0.0.1/udp/8011/quic-v1]\n", "resolver.bootstrap"},
		{"resolver", "resolver:\n  bootstrap: [/ip4/127.0.0.1/udp/8011/quic-v1]\n", "/p2p/"},
		{"resolver", "api: 127.0.0.1:99999\n", `api "127.0.0.1:99999"`},
		{"resolver", "log:\n  format: xml\n", `log format "xml"`},
		{"capsuled", "router: 127.0.0.1:84090\n", `router "127.0.0.1:84090"`},
		{"capsuled", "log:\n  level: loud\n", `log level "loud"`},
		{"capsuled", "engine: rocks\n", `engine "rocks"`},
		// Session 18: the gateway and the handoff agent too.
		{"gateway", "max_body: -1\n", "must not be negative"},
		{"gateway", "tcp_listen: 192.0.2.1:8039\n", "loopback"},
		{"handoffd", "log:\n  level: loud\n", `log level "loud"`},
	} {
		p := filepath.Join(dir, c.role+".yaml")
		if err := os.WriteFile(p, []byte(c.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		rs := runDoctor(doctorOptions{config: p, role: c.role, keystore: dir, procSys: dir})
		var cfg *checkResult
		for i := range rs {
			if rs[i].Check == "config" {
				cfg = &rs[i]
			}
		}
		if cfg == nil || cfg.Status != checkFail || !strings.Contains(cfg.Detail, c.want) {
			t.Errorf("%s %q: config check %+v, want a failure naming %q", c.role, c.yaml, cfg, c.want)
		}
	}
}

// A listen address already taken fails its port check; the clock check
// warns when the kernel says the clock is not synchronised.
func TestDoctorPortsAndClock(t *testing.T) {
	dir := t.TempDir()
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	p := filepath.Join(dir, "router.yaml")
	yaml := "listen: " + udp.LocalAddr().String() + "\nadmin: " + held.Addr().String() + "\n"
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	rs := runDoctor(doctorOptions{config: p, role: "router", keystore: dir, procSys: dir,
		synced: func() (bool, error) { return false, nil }})
	got := map[string]checkResult{}
	for _, r := range rs {
		got[r.Check] = r
	}
	if r := got["port admin"]; r.Status != checkFail || !strings.Contains(r.Detail, held.Addr().String()) {
		t.Errorf("admin port in use: %+v", r)
	}
	if r := got["port listen"]; r.Status != checkFail {
		t.Errorf("udp listen port in use: %+v", r)
	}
	if r := got["clock"]; r.Status != checkWarn || r.Fix == "" {
		t.Errorf("unsynchronised clock: %+v", r)
	}
	// --running (a reload's check, reloadFix's advice): the daemon holds its
	// own ports, so they are not failed.
	rs = runDoctor(doctorOptions{config: p, role: "router", keystore: dir, procSys: dir, running: true})
	for _, r := range rs {
		if strings.HasPrefix(r.Check, "port ") && (r.Status != checkOK || !strings.Contains(r.Detail, "--running")) {
			t.Errorf("--running, port held by the daemon: %+v", r)
		}
	}
	// Freed, the ports pass; a clock that cannot be read is a warning.
	held.Close()
	udp.Close()
	rs = runDoctor(doctorOptions{config: p, role: "router", keystore: dir, procSys: dir,
		synced: func() (bool, error) { return false, errors.New("no adjtimex") }})
	for _, r := range rs {
		if strings.HasPrefix(r.Check, "port ") && r.Status != checkOK {
			t.Errorf("free port: %+v", r)
		}
		if r.Check == "clock" && r.Status != checkWarn {
			t.Errorf("unknown clock: %+v", r)
		}
	}
}

// TestDoctorGatewayAndHandoffd: --role gateway and --role handoffd load
// the file through the daemon's own loader, check its addresses and the
// identity it names (a client key for the gateway, an agent key for the
// agent: the fix says which to make). Before Session 18 doctor knew only
// router, resolver and capsuled.
func TestDoctorGatewayAndHandoffd(t *testing.T) {
	dir := t.TempDir()
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	for _, c := range []struct{ role, yaml, port, kind string }{
		{"gateway", "tcp_listen: " + held.Addr().String() + "\nmetrics: \"off\"\n", "port tcp_listen", "--kind client"},
		{"handoffd", "metrics: " + held.Addr().String() + "\n", "port metrics", "--kind agent"},
	} {
		p := filepath.Join(dir, c.role+".yaml")
		if err := os.WriteFile(p, []byte(c.yaml+"keystore: "+dir+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		got := map[string]checkResult{}
		for _, r := range runDoctor(doctorOptions{config: p, role: c.role, procSys: dir}) {
			got[r.Check] = r
		}
		if r := got["config"]; r.Status != checkOK {
			t.Errorf("%s: config check %+v, want ok", c.role, r)
		}
		if r := got[c.port]; r.Status != checkFail || !strings.Contains(r.Detail, held.Addr().String()) {
			t.Errorf("%s: %s in use: %+v", c.role, c.port, r)
		}
		if r := got["identity"]; r.Status != checkFail || !strings.Contains(r.Fix, c.kind) {
			t.Errorf("%s: identity check %+v, want a failure whose fix makes %s", c.role, r, c.kind)
		}
	}
}

// TestDoctorStoreFree: with --role capsuled doctor compares the free space
// of dir's file system with min_free_bytes (default 64 MiB): below it the
// server would refuse every append (fail), under four times it a warning.
// A first deployment by hand put a store on a 100 MiB tmpfs and saw its
// appends refused from record 747 on, with nothing before to say so.
func TestDoctorStoreFree(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "capsuled.yaml")
	if err := os.WriteFile(p, []byte("dir: "+filepath.Join(dir, "store")+"\nkeystore: "+dir+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		free int64
		want string
	}{{10 << 20, checkFail}, {100 << 20, checkWarn}, {10 << 30, checkOK}} {
		var got *checkResult
		rs := runDoctor(doctorOptions{config: p, role: "capsuled", procSys: dir, free: func(string) (int64, error) { return c.free, nil }})
		for i := range rs {
			if rs[i].Check == "disk dir" {
				got = &rs[i]
			}
		}
		if got == nil || got.Status != c.want || !strings.Contains(got.Detail, "min_free_bytes 67108864") {
			t.Errorf("%d bytes free: disk check %+v, want %s naming min_free_bytes", c.free, got, c.want)
		}
	}
}
