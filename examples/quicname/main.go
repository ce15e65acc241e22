// Command quicname is QUIC over names with the Go SDK (package client): one
// process listens on its identity's name, another dials that name through
// the routers — no IP address of the listener is known or needed — and
// they talk over a QUIC stream. Each side proves its name with its
// certificate: the dialer gets a connection only from the endpoint that
// holds the name it dialled, the listener learns who dialled
// (docs/OPERATIONS.md §7, PROTOCOL.md §9).
//
// The two sides need two identities of the domain (each a key in its
// keystore and a membership certificate), e.g. bob listens and client dials:
//
//	go run ./examples/quicname --router 127.0.0.1:8009 --router-name R \
//	    --keystore bobkeys --identity bob --member bob.member --domain domain.meta listen
//	go run ./examples/quicname --router 127.0.0.1:8009 --router-name R \
//	    --keystore $GDP_KEYSTORE --identity client --member client.member --domain domain.meta \
//	    dial BOBS_NAME "hello by name"
//
// The listener prints its name (the one to dial) and echoes every line it
// is sent, upper-cased, naming the dialer; the dialer prints the echo.
// The routers may differ: a name is found wherever it is attached.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
)

func main() {
	router := flag.String("router", "127.0.0.1:8009", "router tunnel address")
	routerName := flag.String("router-name", "", "router name (gdp router status shows it)")
	keystore := flag.String("keystore", os.Getenv("GDP_KEYSTORE"), "keystore directory")
	identity := flag.String("identity", "client", "keystore alias of this program's identity")
	member := flag.String("member", "client.member", "membership certificate of the identity")
	domain := flag.String("domain", "domain.meta", "domain metadata")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: quicname [flags] listen | dial NAME [MESSAGE]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	c, closeAll, err := attach(ctx, *router, *routerName, *keystore, *identity, *member, *domain)
	if err != nil {
		log.Fatal(err)
	}
	defer closeAll()
	switch args := flag.Args(); {
	case len(args) == 1 && args[0] == "listen":
		err = listen(ctx, c)
	case len(args) >= 2 && args[0] == "dial":
		msg := "hello by name"
		if len(args) > 2 {
			msg = strings.Join(args[2:], " ")
		}
		err = dial(ctx, c, args[1], msg)
	default:
		flag.Usage()
		os.Exit(2)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
}

// attach attaches to the router as the keystore's identity and advertises
// its own name (what a listener is dialled by) and its session name (where
// the answers to what it sends come back).
func attach(ctx context.Context, router, routerName, keystore, identity, memberFile, domainFile string) (*client.Client, func(), error) {
	ks, err := certs.OpenKeystore(keystore)
	if err != nil {
		return nil, nil, err
	}
	id, err := ks.Load(identity)
	if err != nil {
		return nil, nil, err
	}
	member, err := certs.ReadCertFile(memberFile)
	if err != nil {
		return nil, nil, err
	}
	dom, err := certs.ReadMetadataFile(domainFile)
	if err != nil {
		return nil, nil, err
	}
	rn, err := pdu.ParseName(routerName)
	if err != nil {
		return nil, nil, fmt.Errorf("--router-name: %w", err)
	}
	conn, err := net.ListenPacket("udp", ":0")
	if err != nil {
		return nil, nil, err
	}
	// The endpoint carries the identity's QUIC credentials (its metadata
	// and membership) besides the tunnel to the router.
	ep, err := client.NewEndpoint(client.EndpointConfig{Identity: id, Member: member, Domain: dom, Conn: conn})
	if err != nil {
		return nil, nil, err
	}
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := ep.AttachAny(actx, []client.RouterAddr{{Addr: router, Name: rn}}, client.AttachOptions{})
	if err != nil {
		_ = ep.Close()
		return nil, nil, err
	}
	session, err := c.Session()
	if err == nil {
		_, err = c.Advertise(actx, c.Self(), session)
	}
	if err != nil {
		_ = c.Close()
		_ = ep.Close()
		return nil, nil, err
	}
	// Advertised again before the routes run out (their RtCert lasts an
	// hour): a listener advertised only once is unreachable after that.
	c.Maintain(ctx, func() []client.Route {
		if s, err := c.Session(); err == nil {
			return []client.Route{c.Self(), s}
		}
		return []client.Route{c.Self()}
	}, 5*time.Second)
	return c, func() { _ = c.Close(); _ = ep.Close() }, nil
}

func listen(ctx context.Context, c *client.Client) error {
	ln, err := client.ListenName(c, c.Name(), nil)
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Printf("listening on %s (dial this name); Ctrl-C stops\n", c.Name())
	for {
		conn, err := ln.Accept(ctx)
		if err != nil {
			return err
		}
		go func() {
			defer conn.CloseWithError(0, "bye")
			for {
				s, err := conn.AcceptStream(ctx)
				if err != nil {
					return
				}
				go func() {
					defer s.Close()
					lines := bufio.NewScanner(s)
					for lines.Scan() {
						fmt.Printf("%s says %q\n", conn.Peer(), lines.Text())
						if _, err := fmt.Fprintf(s, "%s\n", strings.ToUpper(lines.Text())); err != nil {
							return
						}
					}
				}()
			}
		}()
	}
}

func dial(ctx context.Context, c *client.Client, to, msg string) error {
	name, err := pdu.ParseName(to)
	if err != nil {
		return fmt.Errorf("dial %q: %w", to, err)
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	// A name no router can reach fails at once (*client.NAKError,
	// NO_ROUTE); an endpoint that cannot prove the name, with
	// client.ErrWrongName.
	conn, err := client.DialName(dctx, c, name, nil)
	if err != nil {
		return err
	}
	defer conn.CloseWithError(0, "done")
	s, err := conn.OpenStreamSync(dctx)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(s, "%s\n", msg); err != nil {
		return err
	}
	_ = s.Close() // our side is done; the echo still comes back
	echo, err := io.ReadAll(io.LimitReader(s, 1<<20))
	if err != nil {
		return err
	}
	fmt.Printf("%s answered %q in %v\n", conn.Peer(), strings.TrimSpace(string(echo)), time.Since(start).Round(time.Millisecond))
	return nil
}
