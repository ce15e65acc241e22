package client_test

import (
	"context"
	"io"
	"log"
	"os"
	"time"

	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
)

// Two endpoints attached by client.Endpoint (which gives them their QUIC
// credentials) talk QUIC by name through the routers: the server listens
// on its own name, the other dials that name and gets a connection only
// from the endpoint that proves it.
func ExampleDialName() {
	var server, dialer *client.Client // from Endpoint.Attach or AttachAny, names advertised
	if server == nil {
		return // (a sketch: examples/quicname is a program that runs, TestQUICOverNamesIntact a test)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	ln, err := client.ListenName(server, server.Name(), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept(ctx)
		if err != nil {
			return
		}
		log.Printf("connection from %s", conn.Peer()) // the dialer's proven name
		s, err := conn.AcceptStream(ctx)
		if err != nil {
			return
		}
		_, _ = io.Copy(os.Stdout, s)
	}()

	conn, err := client.DialName(ctx, dialer, server.Name(), &client.QUICConfig{MaxStreams: 16})
	if err != nil {
		log.Fatal(err) // *client.NAKError (NO_ROUTE) at once if no router knows the name
	}
	defer conn.CloseWithError(0, "done")
	s, err := conn.OpenStreamSync(ctx)
	if err != nil {
		log.Fatal(err)
	}
	_, _ = s.Write([]byte("hello by name\n"))
	_ = s.Close()
	var _ pdu.Name = conn.Peer() // == server.Name()
}
