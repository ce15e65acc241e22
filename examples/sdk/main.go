// Command sdk is a Go program on the gdpnet SDK (package client), without
// the gateway: it attaches to a router as the user's identity, creates a
// capsule on replica servers, appends records, reads them back verified,
// follows the capsule with a subscription, and keeps a key–value store
// with time travel (caapi/kv) on a second capsule.
//
//	go run ./examples/sdk --router 127.0.0.1:8009 --router-name NAME \
//	    --keystore $GDP_KEYSTORE --identity client --member client.member \
//	    --domain domain.meta --owner alice --servers S1,S2
//
// Every record it reads was checked against a heartbeat the writer signed
// (hash chain and inclusion proof); every append counts only receipts
// signed by replicas the owner placed the capsule on.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"strings"
	"time"

	"github.com/gdpnet/gdpnet/caapi/kv"
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
	owner := flag.String("owner", "alice", "keystore alias owning (and writing) the capsules")
	servers := flag.String("servers", "", "replica server names, comma-separated")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, *router, *routerName, *keystore, *identity, *member, *domain, *owner, *servers); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, router, routerName, keystore, identity, memberFile, domainFile, ownerAlias, serverList string) error {
	ks, err := certs.OpenKeystore(keystore)
	if err != nil {
		return err
	}
	id, err := ks.Load(identity)
	if err != nil {
		return err
	}
	owner, err := ks.Load(ownerAlias)
	if err != nil {
		return err
	}
	member, err := certs.ReadCertFile(memberFile)
	if err != nil {
		return err
	}
	domain, err := certs.ReadMetadataFile(domainFile)
	if err != nil {
		return err
	}
	rn, err := pdu.ParseName(routerName)
	if err != nil {
		return fmt.Errorf("--router-name: %w", err)
	}
	var servers []pdu.Name
	for _, s := range strings.Split(serverList, ",") {
		n, err := pdu.ParseName(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("--servers: %w", err)
		}
		servers = append(servers, n)
	}

	// Attach (redialling and re-advertising if the router goes away) and
	// advertise this process's own and session names.
	conn, err := net.ListenPacket("udp", ":0")
	if err != nil {
		return err
	}
	ep, err := client.NewEndpoint(client.EndpointConfig{Identity: id, Member: member, Domain: domain, Conn: conn})
	if err != nil {
		return err
	}
	defer ep.Close()
	c, err := ep.AttachAny(ctx, []client.RouterAddr{{Addr: router, Name: rn}}, client.AttachOptions{})
	if err != nil {
		return err
	}
	defer c.Close()
	session, err := c.Session()
	if err != nil {
		return err
	}
	// KeepAdvertised, not Advertise: the router drops a route when its
	// chain's earliest NotAfter passes (the RtCert: an hour), so a program
	// that runs longer advertises its names again before then. The session
	// name's AdCert is renewed by Session() when half its life is gone.
	if _, err := c.KeepAdvertised(ctx, func() []client.Route {
		if s, err := c.Session(); err == nil {
			return []client.Route{c.Self(), s}
		}
		return []client.Route{c.Self(), session}
	}, 5*time.Second); err != nil {
		return err
	}
	caps := client.NewCapsuleClient(c, client.CapsuleOptions{})
	defer caps.Close()

	create := func(desc string) (pdu.Name, error) {
		meta, err := certs.NewCapsule(owner.Key, owner.Public(), desc)
		if err != nil {
			return pdu.Name{}, err
		}
		places, err := client.PlaceCapsule(owner, meta, servers, 72*time.Hour)
		if err != nil {
			return pdu.Name{}, err
		}
		return meta.Name(), caps.Create(ctx, owner, meta, 0, places)
	}

	// Records: append, read back verified, follow.
	name, err := create("sdk example")
	if err != nil {
		return err
	}
	wr, err := caps.NewWriter(ctx, name, owner.Key, client.WriterOptions{})
	if err != nil {
		return err
	}
	for i := 1; i <= 100; i++ {
		if _, err := wr.Append(ctx, []byte(fmt.Sprintf("reading %d", i))); err != nil {
			return err
		}
	}
	d, err := wr.Flush(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("capsule %s: appended 100 records, %s\n", name, d)
	rd, err := caps.NewReader(ctx, name, client.ReaderOptions{})
	if err != nil {
		return err
	}
	recs, err := rd.Read(ctx, 1, 0)
	if err != nil {
		return err
	}
	fmt.Printf("read %d records back, each verified; the last says %q\n", len(recs), recs[len(recs)-1].Data)
	sub, err := rd.Subscribe(ctx, 101)
	if err != nil {
		return err
	}
	defer sub.Close()
	for i := 101; i <= 103; i++ {
		if _, err := wr.Append(ctx, []byte(fmt.Sprintf("reading %d", i))); err != nil {
			return err
		}
	}
	if _, err := wr.Flush(ctx); err != nil {
		return err
	}
	for got := 0; got < 3; {
		ev, err := sub.Next(ctx)
		if err != nil {
			return err
		}
		for _, e := range ev.Entries {
			fmt.Printf("subscription: record %d %q\n", e.Seqno, e.Data)
			got++
		}
	}
	_ = wr.Close(ctx)

	// A key–value store with time travel on a second capsule.
	kvName, err := create("sdk example kv")
	if err != nil {
		return err
	}
	kw, err := kv.OpenWriter(ctx, caps, kvName, owner.Key, kv.WriterOptions{})
	if err != nil {
		return err
	}
	defer kw.Close(ctx)
	first, err := kw.Put(ctx, "colour", []byte("red"))
	if err != nil {
		return err
	}
	if _, err := kw.Put(ctx, "colour", []byte("green")); err != nil {
		return err
	}
	if _, err := kw.Flush(ctx); err != nil {
		return err
	}
	st, err := kv.Open(ctx, caps, kvName, kv.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	now, err := st.Get(ctx, "colour")
	if err != nil {
		return err
	}
	then, err := st.GetAt(ctx, "colour", kv.AtSeqno(first))
	if err != nil {
		return err
	}
	fmt.Printf("kv %s: colour is %s now, was %s as of seqno %d\n", kvName, now.Value, then.Value, first)
	return nil
}
