//go:build unix

package main

import (
	"strings"
	"testing"

	"github.com/gdpnet/gdpnet/pdu"
)

// TestWriterLockNamesHolder (Session 19): a writer refused by the lock is
// told which command holds it, and when the gateway does, that the gateway
// keeps it until idle_close and to write through it — found by hand: `gdp
// kv put` beside a gateway that had written the capsule said "wait for it
// to finish", which the gateway does 5 minutes later.
func TestWriterLockNamesHolder(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"/usr/bin/gdp", "gateway", "--config", "x.yaml"}, "gdp gateway"},
		{[]string{"gdp", "fs", "put", "-c", "conn.yaml", "AAAA"}, "gdp fs put"},
		{[]string{"gdp", "capsule", "append", "kc2jaqbdfO_sEs7NerMmbbDsqwyY_lYLazls1zEj8S4"}, "gdp capsule append"},
		{[]string{"gdp"}, "gdp"},
		{nil, "gdp"},
	} {
		if got := commandName(tc.args); got != tc.want {
			t.Errorf("commandName(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
	ks := t.TempDir() + "/keys"
	c := pdu.Name{7}
	defer func(old string) { lockHolder = old }(lockHolder)
	for _, tc := range []struct{ holder, says string }{
		{"gdp gateway", "write this capsule through the gateway"},
		{"gdp fs put", "wait for it to finish"},
	} {
		lockHolder = tc.holder
		unlock, err := lockWriter(ks, c)
		if err != nil {
			t.Fatal(err)
		}
		// A second open file description of the lock file conflicts as
		// another process's would.
		_, err = lockWriter(ks, c)
		unlock()
		if err == nil || !strings.Contains(err.Error(), "("+tc.holder+")") || !strings.Contains(err.Error(), tc.says) {
			t.Fatalf("held by %s: %v; want the holder named and %q", tc.holder, err, tc.says)
		}
	}
}
