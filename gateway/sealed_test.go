package gateway_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/gateway"
)

type sealedRecordJSON struct {
	Seqno     uint64  `json:"seqno"`
	Data      *string `json:"data"`
	Epoch     uint64  `json:"epoch"`
	KeyRecord bool    `json:"key_record"`
}

type readersJSON struct {
	Epoch    uint64   `json:"epoch"`
	KeySeqno uint64   `json:"key_seqno"`
	Readers  []string `json:"readers"`
	Reader   bool     `json:"reader"`
}

// TestSealedCapsuleThroughGateways: alice's gateway creates an encrypted
// capsule for bob and appends to it; bob's gateway (another gateway on the
// same overlay) opens the records once bob's key is in its keystore and
// answers 403 not_a_reader — a JSON error, no byte of the record — before
// that and for what alice writes after removing him; the servers hold
// ciphertext only (the plain read endpoint returns the envelope); plain
// appends to the encrypted capsule and sealed requests to a plain one are
// refused with 409. Every exchange of both gateways is validated against
// the OpenAPI document.
func TestSealedCapsuleThroughGateways(t *testing.T) {
	w, g, plain := setup(t, gateway.Config{})
	bg := w.gateway(gateway.Config{}, w.routers[0])
	g.validate(t, true)
	bvt := bg.validate(t, true)
	bob, err := certs.NewIdentity(certs.KindClient, "bob")
	if err != nil {
		t.Fatal(err)
	}
	bobKey := base64.RawURLEncoding.EncodeToString(bob.Public())

	// A bad reader refuses the create; nothing is created.
	bad := fmt.Sprintf(`{"owner":"alice","servers":[%q,%q],"w":2,"sealed":true,"readers":["no such alias"]}`, g.servers[0], g.servers[1])
	if code, b := g.do("POST", "/v1/capsules", "application/json", []byte(bad), nil); code != 400 || !strings.Contains(string(b), `"bad_request"`) {
		t.Fatalf("create with a bad reader: %d %s", code, b)
	}
	var created struct {
		Capsule string `json:"capsule"`
		Sealed  bool   `json:"sealed"`
		Epoch   uint64 `json:"epoch"`
	}
	body := fmt.Sprintf(`{"owner":"alice","servers":[%q,%q],"w":2,"description":"diary","sealed":true,"readers":[%q]}`, g.servers[0], g.servers[1], bobKey)
	if code, b := g.do("POST", "/v1/capsules", "application/json", []byte(body), &created); code != http.StatusCreated || !created.Sealed || created.Epoch != 1 {
		t.Fatalf("create sealed: %d %s", code, b)
	}
	c := created.Capsule
	var app appendJSON
	nd := "{\"data\":\"secret one\"}\n{\"data\":\"secret two\"}\n"
	if code, b := g.do("POST", "/v1/sealed/"+c+"/records", "application/x-ndjson", []byte(nd), &app); code != 200 || app.Count != 2 || app.First != 2 || !app.Durable {
		t.Fatalf("sealed append: %d %s", code, b)
	}
	var rng struct{ Records []sealedRecordJSON }
	if code, b := g.do("GET", "/v1/sealed/"+c+"/records", "", nil, &rng); code != 200 || len(rng.Records) != 3 ||
		!rng.Records[0].KeyRecord || rng.Records[1].Data == nil || *rng.Records[1].Data != "secret one" || *rng.Records[2].Data != "secret two" {
		t.Fatalf("writer's read: %d %s", code, b)
	}
	// What the servers hold and serve: the envelope, not the plaintext.
	var raw recordJSON
	if code, b := g.do("GET", "/v1/capsules/"+c+"/records/2", "", nil, &raw); code != 200 {
		t.Fatalf("plain read of a sealed record: %d %s", code, b)
	}
	if env, _ := base64.StdEncoding.DecodeString(raw.DataBase64); len(env) == 0 || bytes.Contains(env, []byte("secret one")) {
		t.Fatalf("the stored record shows the plaintext or nothing: %q", env)
	}

	// Bob's gateway without bob's key: a clear 403, no bytes.
	code, b := bg.do("GET", "/v1/sealed/"+c+"/records/2", "", nil, nil)
	if code != http.StatusForbidden || !strings.Contains(string(b), `"not_a_reader"`) || strings.Contains(string(b), "secret") {
		t.Fatalf("non-reader: %d %s", code, b)
	}
	if code, b := bg.do("GET", "/v1/sealed/"+c+"/records", "", nil, nil); code != http.StatusForbidden || strings.Contains(string(b), "secret") {
		t.Fatalf("non-reader range: %d %s", code, b)
	}
	if v := bg.metric("gdp_gateway_rejected_total", "not_a_reader"); v != 2 {
		t.Fatalf("not_a_reader counted %v times, want 2", v)
	}
	var rs readersJSON
	if code, b := bg.do("GET", "/v1/sealed/"+c+"/readers", "", nil, &rs); code != 200 || rs.Epoch != 1 || rs.KeySeqno != 1 || len(rs.Readers) != 2 || rs.Reader {
		t.Fatalf("readers from bob's gateway without his key: %d %s", code, b)
	}
	// With bob's key: bob's gateway opens them.
	if err := bg.ks.Save("bob", bob); err != nil {
		t.Fatal(err)
	}
	var one sealedRecordJSON
	if code, b := bg.do("GET", "/v1/sealed/"+c+"/records/3", "", nil, &one); code != 200 || one.Data == nil || *one.Data != "secret two" || one.Epoch != 1 {
		t.Fatalf("reader: %d %s", code, b)
	}
	// Bob's gateway cannot write it (it holds no writer key).
	if code, b := bg.do("POST", "/v1/sealed/"+c+"/records", "application/json", []byte(`{"data":"forged"}`), nil); code != http.StatusForbidden || !strings.Contains(string(b), `"no_key"`) {
		t.Fatalf("append by a reader: %d %s", code, b)
	}

	// Alice removes bob: a new epoch; what she writes next bob cannot read,
	// what he could read he still can.
	if code, b := g.do("DELETE", "/v1/sealed/"+c+"/readers/"+bobKey, "", nil, &rs); code != 200 || rs.Epoch != 2 || len(rs.Readers) != 1 || !rs.Reader {
		t.Fatalf("remove bob: %d %s", code, b)
	}
	if code, b := g.do("POST", "/v1/sealed/"+c+"/records", "application/json", []byte(`{"data":"after bob"}`), &app); code != 200 || app.First != 5 {
		t.Fatalf("append after removal: %d %s", code, b)
	}
	if code, b := bg.do("GET", "/v1/sealed/"+c+"/records/5", "", nil, nil); code != http.StatusForbidden || strings.Contains(string(b), "after bob") {
		t.Fatalf("removed reader on a new record: %d %s", code, b)
	}
	if code, b := bg.do("GET", "/v1/sealed/"+c+"/records?from=2&to=3", "", nil, &rng); code != 200 || len(rng.Records) != 2 {
		t.Fatalf("removed reader on old records: %d %s", code, b)
	}
	if code, b := g.do("GET", "/v1/sealed/"+c+"/records/5", "", nil, &one); code != 200 || *one.Data != "after bob" || one.Epoch != 2 {
		t.Fatalf("writer after rotation: %d %s", code, b)
	}
	// Adding him back by alias is not possible from alice's gateway (no
	// such alias there); by key it is.
	if code, b := g.do("PUT", "/v1/sealed/"+c+"/readers/bob", "", nil, nil); code != 400 {
		t.Fatalf("add an unknown alias: %d %s", code, b)
	}
	if code, b := g.do("PUT", "/v1/sealed/"+c+"/readers/"+bobKey, "", nil, &rs); code != 200 || rs.Epoch != 3 || len(rs.Readers) != 2 {
		t.Fatalf("add bob again: %d %s", code, b)
	}
	// The writer cannot remove itself.
	alice, _ := g.ks.Load("alice")
	if code, b := g.do("DELETE", "/v1/sealed/"+c+"/readers/alice", "", nil, nil); code != 400 || alice == nil {
		t.Fatalf("writer removes itself: %d %s", code, b)
	}

	// Plain writes to the encrypted capsule and sealed requests to a plain
	// one: 409, nothing written.
	if code, b := g.do("POST", "/v1/capsules/"+c+"/records", "application/json", []byte(`{"data":"in the clear"}`), nil); code != http.StatusConflict || !strings.Contains(string(b), `"sealed_capsule"`) {
		t.Fatalf("plain append to a sealed capsule: %d %s", code, b)
	}
	if code, b := g.do("PUT", "/v1/kv/"+c+"/keys/k", "application/json", []byte(`{"value":"v"}`), nil); code != http.StatusConflict {
		t.Fatalf("kv put to a sealed capsule: %d %s", code, b)
	}
	if code, b := g.do("POST", "/v1/capsules/"+plain+"/records", "application/json", []byte(`{"data":"plain"}`), nil); code != 200 {
		t.Fatalf("plain append: %d %s", code, b)
	}
	for _, p := range []string{"/records", "/records/1", "/readers"} {
		if code, b := g.do("GET", "/v1/sealed/"+plain+p, "", nil, nil); code != http.StatusConflict || !strings.Contains(string(b), `"not_sealed"`) {
			t.Fatalf("GET /v1/sealed/{plain}%s: %d %s", p, code, b)
		}
	}
	if code, b := g.do("POST", "/v1/sealed/"+plain+"/records", "application/json", []byte(`{"data":"x"}`), nil); code != http.StatusConflict {
		t.Fatalf("sealed append to a plain capsule: %d %s", code, b)
	}
	var tail rangeJSON
	if code, b := g.do("GET", "/v1/capsules/"+c+"/records?from=6", "", nil, &tail); code != 200 || len(tail.Records) != 1 {
		t.Fatalf("the sealed capsule after the refusals holds %s (%d), want only the key record 6", b, code)
	}
	if bvt.checked == 0 {
		t.Fatal("nothing validated")
	}
}
