package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/internal/clock"
	"github.com/gdpnet/gdpnet/resolver"
)

// TestRouterRestartClockSetBack: a real `gdp router` process publishes
// its own location record in a real DHT (a `gdp resolver` process), is
// killed (-9) and started again with GDP_FAULT_CLOCK_OFFSET=-3m and
// another address. Its new record supersedes the old one within seconds:
// its sequences continue above the floor kept in its state directory
// (default: "router" beside the keystore), not from its clock, which
// would make them lower than the previous run's and the DHT keep the dead
// address until the old record expired.
func TestRouterRestartClockSetBack(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes; skipped with -short")
	}
	dir := t.TempDir()
	d := newE2EDomain(t, dir, "e2e clock domain", time.Minute, map[string]certs.Kind{"resolver": certs.KindResolver, "r1": certs.KindRouter})
	ksDir, domainPath, ids := d.ksDir, d.domainPath, d.ids
	creds := func(alias string) string {
		return fmt.Sprintf("keystore: %s\nidentity: %s\nmember_cert: %s\ndomain: %s\n", ksDir, alias,
			filepath.Join(dir, alias+".member"), domainPath)
	}
	var all []*proc
	killAtEnd(t, &all)
	daemon := func(name string, env []string, args ...string) *proc {
		p := &proc{name: name, args: args, env: env, log: filepath.Join(dir, name+".log")}
		all = append(all, p)
		p.start(t)
		return p
	}
	resConf, resAPI := resolverConf(t, creds("resolver"), "warn")
	daemon("resolver", nil, "resolver", "--config", writeConf(t, dir, "resolver", resConf))
	rst := waitResolver(t, resAPI, 20*time.Second)
	router := func(run string, env []string) (string, *proc) {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "udp"))
		conf := creds("r1") + fmt.Sprintf(`listen: %q
admin: "127.0.0.1:%d"
log: {level: warn}
resolver:
  mode: dht
  listen: [/ip4/127.0.0.1/udp/%d/quic-v1]
  bootstrap: [%s]
  min_puts: 1
  handshake_timeout: 5s
`, addr, freePort(t, "tcp"), freePort(t, "udp"), rst.Addrs[0])
		return addr, daemon(run, env, "router", "--config", writeConf(t, dir, run, conf))
	}
	record := func(addr string, within time.Duration) resolver.View {
		t.Helper()
		var views []resolver.View
		waitFor(t, "r1's record at "+addr, within, func() bool {
			return getJSON("http://"+resAPI+"/lookup/"+ids["r1"].Name.String()+"?cache=no&format=json", &views) &&
				len(views) == 1 && slices.Equal(views[0].Addrs, []string{addr})
		})
		return views[0]
	}

	addr1, p1 := router("r1", nil)
	first := record(addr1, 30*time.Second)
	p1.kill9()
	addr2, _ := router("r1-behind", []string{clock.EnvOffset + "=-3m"})
	second := record(addr2, 20*time.Second)
	if second.Sequence <= first.Sequence {
		t.Fatalf("sequence went back: %d after %d", second.Sequence, first.Sequence)
	}
	if _, err := os.Stat(filepath.Join(dir, "router", resolver.SequenceFileName+"-"+ids["r1"].Name.String())); err != nil {
		t.Fatalf("the floor is not beside the keystore: %v", err)
	}
}
