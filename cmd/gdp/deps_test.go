package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBinaryLeavesOutGopacketLayers: the gdp binary does not link
// gopacket's layers (nor pcapgo, which imports them): their init fills
// 7 MB of tables in every process, a twentieth of a netns router's CPU in
// the simulator's 100-router build (SIMULATOR.md §8, session 9). The sim
// writes and reads its pcaps itself (sim/gdplayer); programs decoding
// with gopacket import sim/gdplayer/gdpudp.
func TestBinaryLeavesOutGopacketLayers(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go tool to list the binary's packages: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if p == "github.com/google/gopacket/layers" || p == "github.com/google/gopacket/pcapgo" {
			t.Errorf("gdp links %s", p)
		}
	}
}
