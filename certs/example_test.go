package certs_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/gdpnet/gdpnet/certs"
)

// A domain, a router, a server and a capsule; the server advertises the
// capsule at the router, and a verifier that trusts the domain checks it.
func ExampleVerifier_VerifyRoute() {
	domain, _ := certs.NewIdentity(certs.KindDomain, "example domain")
	router, _ := certs.NewIdentity(certs.KindRouter, "edge router")
	server, _ := certs.NewIdentity(certs.KindServer, "capsule server")
	owner, _ := certs.NewIdentity(certs.KindClient, "capsule owner")
	writer, _ := certs.NewIdentity(certs.KindClient, "capsule writer")
	capsule, _ := certs.NewCapsule(owner.Key, writer.Public(), "sensor log")

	now := time.Now()
	member, _ := certs.IssueMember(domain, router.Name, now, now.Add(72*time.Hour))
	rt, _ := certs.IssueRtCert(server, router.Name, now, now.Add(24*time.Hour))
	ad, _ := certs.IssueAdCert(owner.Key, capsule.Name(), server.Name, now, now.Add(48*time.Hour))

	chain := &certs.Chain{Target: capsule, AdCert: ad, Endpoint: server.Meta, RtCert: rt,
		Router: router.Meta, Member: member, Domain: domain.Meta}
	wire := chain.Marshal() // what an ADVERTISE carries

	got, err := certs.ParseChain(wire)
	if err != nil {
		fmt.Println(err)
		return
	}
	v := certs.NewVerifier(domain.Meta)
	exp, err := v.VerifyRoute(got, capsule.Name(), router.Name)
	fmt.Println("accepted:", err == nil, "expires with the rtcert:", exp.Equal(rt.NotAfter))

	// A verifier that trusts another domain refuses it, naming the link.
	other, _ := certs.NewIdentity(certs.KindDomain, "other domain")
	_, err = certs.NewVerifier(other.Meta).VerifyRoute(got, capsule.Name(), router.Name)
	var ce *certs.ChainError
	if errors.As(err, &ce) {
		fmt.Println("refused at", ce.Link+":", ce.Err)
	}
	// Output:
	// accepted: true expires with the rtcert: true
	// refused at member: untrusted domain
}
