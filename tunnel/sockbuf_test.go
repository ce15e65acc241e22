package tunnel

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// An operator must see when the kernel refuses the socket buffers.
func TestSocketBufferRefusalIsLogged(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		t.Skip("no /proc/sys/net/core/rmem_max")
	}
	max, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	core, logs := observer.New(zap.InfoLevel)
	n := newTestNode(t, true, func(c *Config) {
		c.Logger = zap.New(core)
		c.SocketBuffer = max + 4<<20 // more than the kernel allows
	})
	_ = n
	got := logs.FilterMessageSnippet("raise net.core.rmem_max").All()
	if len(got) != 1 || got[0].Level != zap.WarnLevel {
		t.Fatalf("want one warning naming the sysctl, got %v", logs.All())
	}
	up := logs.FilterMessage("raw transport up").All()
	if len(up) != 1 {
		t.Fatal("no startup line for the raw transport")
	}
}
