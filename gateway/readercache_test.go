package gateway_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/gdpnet/gdpnet/gateway"
)

// TestReaderCacheBounded: a gateway reading more capsules than
// max_readers keeps at most max_readers readers, drops the least recently
// used one first (counted), and every read still returns its capsule's
// records; a reload with a smaller bound drops the excess at once.
func TestReaderCacheBounded(t *testing.T) {
	_, g, first := setup(t, gateway.Config{MaxReaders: 3})
	caps := []string{first}
	for i := 1; i < 5; i++ {
		var created struct {
			Capsule string `json:"capsule"`
		}
		body := fmt.Sprintf(`{"owner":"alice","servers":[%q,%q],"w":2}`, g.servers[0], g.servers[1])
		if code, b := g.do("POST", "/v1/capsules", "application/json", []byte(body), &created); code != http.StatusCreated {
			t.Fatalf("create %d: %d %s", i, code, b)
		}
		caps = append(caps, created.Capsule)
	}
	for i, c := range caps {
		if code, b := g.do("POST", "/v1/capsules/"+c+"/records", "application/json", []byte(fmt.Sprintf(`{"data":"capsule %d"}`, i)), nil); code != 200 {
			t.Fatalf("append %d: %d %s", i, code, b)
		}
	}
	read := func(i int) {
		t.Helper()
		var one recordJSON
		if code, b := g.do("GET", "/v1/capsules/"+caps[i]+"/records/1", "", nil, &one); code != 200 || one.Data == nil || *one.Data != fmt.Sprintf("capsule %d", i) {
			t.Fatalf("read capsule %d: %d %s", i, code, b)
		}
	}
	check := func(what string, readers, evictions float64) {
		t.Helper()
		if got := g.metric("gdp_gateway_readers", ""); got != readers {
			t.Fatalf("%s: gdp_gateway_readers %v, want %v", what, got, readers)
		}
		if got := g.metric("gdp_gateway_reader_evictions_total", ""); got != evictions {
			t.Fatalf("%s: gdp_gateway_reader_evictions_total %v, want %v", what, got, evictions)
		}
	}
	// Each append looked at its capsule (is it encrypted?) through a
	// reader: 5 capsules, bound 3, so 0 and 1 were dropped and 2, 3, 4
	// are held, 2 the least recently used.
	check("5 capsules appended to, bound 3", 3, 2)
	read(2)
	read(3)
	read(4)
	check("held capsules read: nothing opened, nothing dropped", 3, 2)
	// 2 is the least recently used: reading 0 drops it, not 3 or 4.
	read(0)
	check("capsule 0 read again", 3, 3)
	read(3)
	read(4)
	check("3 and 4 still held", 3, 3)
	// 0 is now the least recently used (3 and 4 were used after it), so
	// opening 2 again drops 0 and keeps 3 and 4.
	read(2)
	check("2 opened again", 3, 4)
	read(3)
	read(4)
	check("3 and 4 kept", 3, 4)
	read(0)
	check("0 was the one dropped", 3, 5)
	// A reload with a smaller bound drops the excess at once.
	g.srv.Reload(gateway.Config{MaxReaders: 1})
	check("reload to 1", 1, 7)
	read(0)
	check("the most recent one kept", 1, 7)
}
