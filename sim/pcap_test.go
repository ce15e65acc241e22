package sim

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/sim/gdplayer"
)

// TestPcap: the PDU captures hold every ping and its answer, decoded by
// the gopacket layer; the wire capture holds the link's (encrypted)
// datagrams, which are no PDUs.
func TestPcap(t *testing.T) {
	top, err := Builtin("linear", Params{N: 3, Delay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	top.Measure.Pcap = []string{"c1-r1", "r1-r3"}
	out := t.TempDir()
	s, err := Start(context.Background(), top, Options{Out: out})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Run(context.Background())
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.Summary)
	c1, _ := s.Name("c1")
	c2, _ := s.Name("c2")
	count := func(file string) map[string]int {
		f, err := os.Open(filepath.Join(out, file))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		n := map[string]int{}
		err = gdplayer.Scan(f, func(p gdplayer.Packet) error {
			h := p.GDP.Header
			switch {
			case h.Type == pdu.TypeEchoRequest && h.Src == c1 && h.Dst == c2:
				n["request"]++
			case h.Type == pdu.TypeEchoReply && h.Src == c2 && h.Dst == c1:
				n["reply"]++
			}
			n["all"]++
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		return n
	}
	answered := res.Workloads[0].Received
	for _, f := range []string{"c1-r1.pdu.pcap", "r1-r3.pdu.pcap"} {
		n := count(f)
		t.Logf("%s: %v", f, n)
		if n["request"] != 20 || n["reply"] < answered {
			t.Fatalf("%s: %d requests and %d replies, want 20 and %d", f, n["request"], n["reply"], answered)
		}
	}
	if n := count("c1-r1.wire.pcap"); n["all"] != 0 {
		t.Fatalf("the wire capture decoded as PDUs: %v", n)
	}
	if st, err := os.Stat(filepath.Join(out, "c1-r1.wire.pcap")); err != nil || st.Size() < 40*100 {
		t.Fatalf("wire capture too small: %v %v", st, err)
	}
}
