package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/router"
)

// probeFlags are what ping and traceroute need to attach to a router as an
// endpoint of their own.
type probeFlags struct {
	routerAddr, routerName, admin string
	keystore, identity            string
	member, domain                string
	timeout                       time.Duration
	// rtCertLifetime is the validity of the RtCerts the probe issues (0:
	// client.Options' default, an hour). Tests shorten it.
	rtCertLifetime time.Duration
}

func (f *probeFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&f.routerAddr, "router", "127.0.0.1:8009", "tunnel address of the router to attach to")
	c.Flags().StringVar(&f.routerName, "router-name", "", "the router's name (default: asked from its admin API)")
	c.Flags().StringVar(&f.admin, "admin", "127.0.0.1:8019", "the router's admin address, to learn its name")
	c.Flags().StringVar(&f.keystore, "keystore", defaultKeystoreDir(), "keystore holding the probe's key ($GDP_KEYSTORE overrides the default)")
	c.Flags().StringVar(&f.identity, "identity", "ping", "keystore alias of the probe's identity (a client)")
	c.Flags().StringVar(&f.member, "member", "/etc/gdp/ping.member", "the probe identity's membership certificate")
	c.Flags().StringVar(&f.domain, "domain", "/etc/gdp/domain.meta", "the domain's metadata")
	c.Flags().DurationVar(&f.timeout, "timeout", 2*time.Second, "how long to wait for each answer")
}

// attach opens a tunnel to the router and advertises the probe's own name
// so answers can come back, again before it expires for as long as the
// command runs (a `gdp ping -c 0` outlives the RtCert's hour; advertised
// once, its answers were dropped from then on).
func (f *probeFlags) attach(ctx context.Context) (*client.Client, func(), error) {
	creds, err := loadCreds("probe", credFiles{keystore: f.keystore, identity: f.identity, member: f.member, domain: f.domain})
	if err != nil {
		return nil, nil, err
	}
	rname := f.routerName
	if rname == "" {
		if rname, err = adminName(ctx, f.admin); err != nil {
			return nil, nil, fmt.Errorf("router name: %w (or pass --router-name)", err)
		}
	}
	rn, err := pdu.ParseName(rname)
	if err != nil {
		return nil, nil, err
	}
	conn, err := net.ListenPacket("udp", ":0")
	if err != nil {
		return nil, nil, err
	}
	ep, err := client.NewEndpoint(client.EndpointConfig{Identity: creds.id, Member: creds.member, Domain: creds.domain, Conn: conn,
		Options: client.Options{RtCertLifetime: f.rtCertLifetime}})
	if err != nil {
		return nil, nil, err
	}
	c, err := ep.Attach(ctx, f.routerAddr, rn)
	if err != nil {
		_ = ep.Close()
		return nil, nil, err
	}
	if _, err := c.KeepAdvertised(ctx, func() []client.Route { return []client.Route{c.Self()} }, 5*time.Second); err != nil {
		_ = ep.Close()
		return nil, nil, err
	}
	return c, func() { _ = c.Close(); _ = ep.Close() }, nil
}

func adminName(ctx context.Context, admin string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/v1/status", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var s router.Summary
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return "", err
	}
	return s.Name.String(), nil
}

func init() {
	var pf probeFlags
	var count, size int
	var interval time.Duration
	ping := &cobra.Command{
		Use:   "ping NAME",
		Short: "Send ECHO_REQUESTs to a name (a capsule, server, client or router) and time the replies",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dst, err := pdu.ParseName(args[0])
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			c, done, err := pf.attach(ctx)
			if err != nil {
				return err
			}
			defer done()
			st, err := pingLoop(ctx, c, dst, count, interval, pf.timeout, size, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			if st.received == 0 {
				return errors.New("no replies")
			}
			return nil
		},
	}
	pf.add(ping)
	ping.Flags().IntVarP(&count, "count", "c", 4, "stop after this many requests (0: until interrupted)")
	ping.Flags().IntVarP(&size, "size", "s", 56, "payload bytes")
	ping.Flags().DurationVarP(&interval, "interval", "i", time.Second, "time between requests")
	addCommand(ping)

	var tf probeFlags
	var maxHops int
	trace := &cobra.Command{
		Use:   "traceroute NAME",
		Short: "Show the routers on the path to a name, hop by hop",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dst, err := pdu.ParseName(args[0])
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			c, done, err := tf.attach(ctx)
			if err != nil {
				return err
			}
			defer done()
			return traceroute(ctx, c, dst, maxHops, tf.timeout, cmd.OutOrStdout())
		},
	}
	tf.add(trace)
	trace.Flags().IntVarP(&maxHops, "max-hops", "m", 16, "give up after this many hops")
	addCommand(trace)
}

type pingStats struct {
	sent, received int
	min, max, sum  time.Duration
}

// pingLoop pings dst count times (0: until ctx ends) and prints a line per
// answer and a summary, as ping(8) does.
func pingLoop(ctx context.Context, c *client.Client, dst pdu.Name, count int, interval, timeout time.Duration, size int, out io.Writer) (pingStats, error) {
	var st pingStats
	fmt.Fprintf(out, "PING %s via router %s: %d bytes\n", dst, c.Router(), size)
	for i := 1; count == 0 || i <= count; i++ {
		if ctx.Err() != nil {
			break
		}
		st.sent++
		rep, err := c.Probe(ctx, dst, pdu.DefaultTTL, size, timeout)
		switch {
		case errors.Is(err, client.ErrTimeout):
			fmt.Fprintf(out, "no answer from %s: seq=%d\n", dst, i)
		case err != nil:
			if ctx.Err() != nil {
				st.sent--
				break
			}
			return st, err
		case rep.Reached:
			st.received++
			if st.min == 0 || rep.RTT < st.min {
				st.min = rep.RTT
			}
			st.max = max(st.max, rep.RTT)
			st.sum += rep.RTT
			fmt.Fprintf(out, "%d bytes from %s: seq=%d time=%s\n", size, rep.From, i, ms(rep.RTT))
		default:
			fmt.Fprintf(out, "from router %s: seq=%d %s\n", rep.From, i, rep.Code)
		}
		if count == 0 || i < count {
			select {
			case <-ctx.Done():
			case <-time.After(interval):
			}
		}
	}
	loss := 0.0
	if st.sent > 0 {
		loss = 100 * float64(st.sent-st.received) / float64(st.sent)
	}
	fmt.Fprintf(out, "--- %s ping statistics ---\n%d sent, %d received, %.0f%% loss", dst, st.sent, st.received, loss)
	if st.received > 0 {
		fmt.Fprintf(out, ", rtt min/avg/max = %s/%s/%s", ms(st.min), ms(st.sum/time.Duration(st.received)), ms(st.max))
	}
	fmt.Fprintln(out)
	return st, nil
}

// traceroute prints one line per hop: the router whose TTL check stopped
// the probe, and finally the destination.
func traceroute(ctx context.Context, c *client.Client, dst pdu.Name, maxHops int, timeout time.Duration, out io.Writer) error {
	fmt.Fprintf(out, "traceroute to %s via router %s, %d hops max\n", dst, c.Router(), maxHops)
	hops, err := c.Traceroute(ctx, dst, maxHops, timeout, func(h client.Hop) {
		n := int(h.TTL) + 1
		switch {
		case h.Timeout:
			fmt.Fprintf(out, "%2d  *\n", n)
		case h.Reply.Reached:
			fmt.Fprintf(out, "%2d  %s  %s  (destination)\n", n, h.Reply.From, ms(h.Reply.RTT))
		case h.Reply.Code == pdu.CodeTTLExpired:
			fmt.Fprintf(out, "%2d  %s  %s  router\n", n, h.Reply.From, ms(h.Reply.RTT))
		default:
			fmt.Fprintf(out, "%2d  %s  %s  %s\n", n, h.Reply.From, ms(h.Reply.RTT), h.Reply.Code)
		}
	})
	if err != nil {
		return err
	}
	if len(hops) == 0 || !hops[len(hops)-1].Reply.Reached {
		return fmt.Errorf("%s not reached", dst)
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
