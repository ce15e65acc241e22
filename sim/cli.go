package sim

import (
	"bufio"
	"context"
	"fmt"
	"github.com/gdpnet/gdpnet/client"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/router"
)

const cliHelp = `commands:
  nodes                  every node: kind, domain, router, address, up/down, name
  links                  every link: settings, up/down, packets delivered and dropped
  ping A B [count]       ping node B by name from client A (default 3)
  trace A B              traceroute from client A to node B by name (overlay hops)
  cut A-B | restore A-B  take a link down or up
  kill N | restart N     crash a node or start it again
  routes R               router R's FIB: name, origin, next hop, holder
  faces R                router R's faces (tunnels)
  run                    run the topology's workloads and failures now; print the results
  help | quit`

// CLI reads commands from in and answers on out until quit or EOF, in the
// spirit of Mininet's CLI: the topology stays up between commands.
func (s *Sim) CLI(ctx context.Context, in io.Reader, out io.Writer) error {
	if s.t0.IsZero() {
		s.t0 = time.Now()
	}
	sc := bufio.NewScanner(in)
	fmt.Fprint(out, "gdp sim> ")
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 {
			if f[0] == "quit" || f[0] == "exit" {
				return nil
			}
			if err := s.command(ctx, f, out); err != nil {
				fmt.Fprintf(out, "error: %v\n", err)
			}
		}
		fmt.Fprint(out, "gdp sim> ")
	}
	fmt.Fprintln(out)
	return sc.Err()
}

func (s *Sim) command(ctx context.Context, f []string, out io.Writer) error {
	arg := func(i int) (string, error) {
		if i >= len(f) {
			return "", fmt.Errorf("%s: missing argument (help lists the commands)", f[0])
		}
		return f[i], nil
	}
	node := func(i int) (*simNode, error) {
		a, err := arg(i)
		if err != nil {
			return nil, err
		}
		if n := s.nodes[a]; n != nil {
			return n, nil
		}
		return nil, fmt.Errorf("no node %q", a)
	}
	switch f[0] {
	case "help", "?":
		fmt.Fprintln(out, cliHelp)
	case "nodes":
		tw := tabwriter.NewWriter(out, 0, 2, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tKIND\tDOMAIN\tROUTER\tADDRESS\tSTATE\tGDP NAME")
		for _, n := range s.order {
			n.mu.Lock()
			state := "down"
			if n.up {
				state = "up"
			}
			n.mu.Unlock()
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.spec.Name, n.spec.Kind, n.spec.Domain, dash(n.spec.Attach), n.addr, state, n.id.Name)
		}
		return tw.Flush()
	case "links":
		tw := tabwriter.NewWriter(out, 0, 2, 2, ' ', 0)
		fmt.Fprintln(tw, "LINK\tSETTINGS\tSTATE\tDELIVERED a→b / b→a\tDROPPED a→b / b→a")
		for _, l := range s.net.Links() {
			cfg := l.Dirs[0].Config()
			state := "up"
			if cfg.Down {
				state = "down"
			}
			set := linkFields(cfg, nil)
			var d, x [2]uint64
			for i, dir := range l.Dirs {
				c := dir.Counts()
				d[i] = c.Packets["delivered"]
				x[i] = c.Packets["lost"] + c.Packets["queue_full"] + c.Packets["too_big"] + c.Packets["down"]
			}
			fmt.Fprintf(tw, "%s-%s\t%s\t%s\t%d / %d\t%d / %d\n", l.A.Name, l.B.Name, dash(set), state, d[0], d[1], x[0], x[1])
		}
		return tw.Flush()
	case "ping":
		from, err := arg(1)
		if err != nil {
			return err
		}
		to, err := arg(2)
		if err != nil {
			return err
		}
		count := 3
		if len(f) > 3 {
			if count, err = strconv.Atoi(f[3]); err != nil || count < 1 {
				return fmt.Errorf("ping: count %q", f[3])
			}
		}
		got := 0
		for i := range count {
			rep, err := s.Ping(ctx, from, to, 64, time.Second)
			if err != nil {
				fmt.Fprintf(out, "%s → %s: %v\n", from, to, err)
			} else {
				got++
				fmt.Fprintf(out, "%s → %s: reply from %s time %.2f ms\n", from, to, s.nameOf(rep.From), float64(rep.RTT)/1e6)
			}
			if i < count-1 {
				time.Sleep(200 * time.Millisecond)
			}
		}
		fmt.Fprintf(out, "Results: %.0f%% dropped (%d/%d received)\n", 100*float64(count-got)/float64(count), got, count)
	case "trace":
		from, err := arg(1)
		if err != nil {
			return err
		}
		to, err := node(2)
		if err != nil {
			return err
		}
		c := s.Client(from)
		if c == nil {
			return fmt.Errorf("%s is no client, or is down", from)
		}
		_, err = c.Traceroute(ctx, to.id.Name, 16, time.Second, func(h client.Hop) {
			if h.Timeout {
				fmt.Fprintf(out, "%2d  *\n", h.TTL)
				return
			}
			fmt.Fprintf(out, "%2d  %s (%s)  %.2f ms\n", h.TTL, s.nameOf(h.Reply.From), short(h.Reply.From), float64(h.Reply.RTT)/1e6)
		})
		return err
	case "cut", "restore":
		id, err := arg(1)
		if err != nil {
			return err
		}
		kind := FailLinkDown
		if f[0] == "restore" {
			kind = FailLinkUp
		}
		if err := s.Fail(ctx, &Failure{Kind: kind, Link: id}); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s %s\n", kind, id)
	case "kill", "restart":
		n, err := node(1)
		if err != nil {
			return err
		}
		kind := FailCrash
		if f[0] == "restart" {
			kind = FailRestart
		}
		if err := s.Fail(ctx, &Failure{Kind: kind, Node: n.spec.Name}); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s %s\n", kind, n.spec.Name)
	case "routes", "faces":
		n, err := node(1)
		if err != nil {
			return err
		}
		r := s.Router(n.spec.Name)
		if r == nil {
			return fmt.Errorf("%s is no router, or is down", n.spec.Name)
		}
		tw := tabwriter.NewWriter(out, 0, 2, 2, ' ', 0)
		if f[0] == "faces" {
			fmt.Fprintln(tw, "FACE\tKIND\tPEER\tNAMES\tRX\tTX\tDROPS")
			for _, fi := range r.Faces() {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\t%d\n", fi.ID, fi.Kind, s.nameOf(fi.Peer), fi.Names, fi.RxPDUs, fi.TxPDUs, fi.Drops)
			}
			return tw.Flush()
		}
		fmt.Fprintln(tw, "NAME\tORIGIN\tNEXT HOP\tHOLDER\tCOST")
		r.FIB().Walk(func(name pdu.Name, hops []router.Hop) bool {
			for _, h := range hops {
				next := "-"
				if h.Face != nil {
					next = s.nameOf(h.Face.Peer())
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", s.nameOf(name), h.Origin, next, s.nameOf(h.Router), h.Cost)
			}
			return true
		})
		return tw.Flush()
	case "run":
		res, err := s.Run(ctx)
		if err != nil {
			return err
		}
		fmt.Fprint(out, res.Text())
	default:
		return fmt.Errorf("unknown command %q (help lists them)", f[0])
	}
	return nil
}

// nameOf is a node's simulator name for its gdpnet name, else the name
// shortened.
func (s *Sim) nameOf(n pdu.Name) string {
	for _, nd := range s.order {
		if nd.id.Name == n {
			return nd.spec.Name
		}
	}
	return short(n)
}

func short(n pdu.Name) string {
	v := n.String()
	if len(v) > 12 {
		return v[:12]
	}
	return v
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
