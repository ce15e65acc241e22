package sim

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestCLI drives the interactive mode: list nodes, ping and traceroute by
// name, cut and restore a link, show a router's routes and faces.
func TestCLI(t *testing.T) {
	top, err := Builtin("linear", Params{N: 3, Delay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := Start(ctx, top, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	in := strings.NewReader("nodes\nping c1 c2 2\ncut r1-r2\nping c1 c2 1\nrestore r1-r2\nping c1 c2 2\nroutes r1\nfaces r3\ntrace c1 c2\nlinks\nbogus\nquit\nnodes\n")
	var out strings.Builder
	if err := s.CLI(ctx, in, &out); err != nil {
		t.Fatal(err)
	}
	o := out.String()
	t.Log(o)
	for _, want := range []string{
		"c2    client  default  r3",
		"Results: 0% dropped (2/2 received)",
		"Results: 100% dropped (0/1 received)",
		"link_down r1-r2", "link_up r1-r2",
		"c1    local", // r1's FIB holds its client
		" 1  r3 (",    // traceroute: the overlay hop r1 → r3 …
		" 2  c2 (",    // … and c2
		"reply from c2 time",
		"r1-r2  delay: 1ms  up", // links
		`unknown command "bogus"`,
	} {
		if !strings.Contains(o, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Count(o, "GDP NAME") != 1 {
		t.Errorf("commands after quit were run")
	}
}
