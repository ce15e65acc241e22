package tunnel

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/tls"
	"fmt"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// TestRawAEADOfSuite: the raw frames' AEAD follows the ALPN and the TLS
// cipher suite (PROTOCOL.md §4.4) — ChaCha20-Poly1305 on gdp-tunnel/1
// whatever the suite; on gdp-tunnel/2 the suite's AEAD, keyed with the
// first bytes of each direction's 32 — checked by opening what rawKeys'
// AEAD seals with an independently built one.
func TestRawAEADOfSuite(t *testing.T) {
	km := make([]byte, 32)
	for i := range km {
		km[i] = byte(i)
	}
	gcm := func(k []byte) cipher.AEAD {
		b, err := aes.NewCipher(k)
		if err != nil {
			t.Fatal(err)
		}
		a, err := cipher.NewGCM(b)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	chacha, _ := chacha20poly1305.New(km)
	tests := []struct {
		name      string
		alpn      string
		suite     uint16
		want      cipher.AEAD
		wantLimit bool
	}{
		{"v1 aes suite", ALPNv1, tls.TLS_AES_128_GCM_SHA256, chacha, false},
		{"v1 chacha suite", ALPNv1, tls.TLS_CHACHA20_POLY1305_SHA256, chacha, false},
		{"v2 aes-128 suite", ALPN, tls.TLS_AES_128_GCM_SHA256, gcm(km[:16]), true},
		{"v2 aes-256 suite", ALPN, tls.TLS_AES_256_GCM_SHA384, gcm(km), true},
		{"v2 chacha suite", ALPN, tls.TLS_CHACHA20_POLY1305_SHA256, chacha, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := rawAEADOf(&tls.ConnectionState{NegotiatedProtocol: tc.alpn, CipherSuite: tc.suite})
			got, err := a.new(km[:a.keyLen])
			if err != nil {
				t.Fatal(err)
			}
			nonce := make([]byte, 12)
			sealed := got.Seal(nil, nonce, []byte("gdp frame"), []byte("header"))
			if p, err := tc.want.Open(nil, nonce, sealed, []byte("header")); err != nil || !bytes.Equal(p, []byte("gdp frame")) {
				t.Fatalf("%s: the expected AEAD cannot open its frame: %v", a.name, err)
			}
			if (a.maxFrames != 0) != tc.wantLimit || (a.rekeyFrames != 0) != tc.wantLimit {
				t.Errorf("%s: limits %d/%d, want a limit: %v", a.name, a.rekeyFrames, a.maxFrames, tc.wantLimit)
			}
		})
	}
}

// linkAEAD is the type of a raw link's send AEAD.
func linkAEAD(l Link) string { return fmt.Sprintf("%T", l.(*link).raw.out.Load().aead) }

// TestRawALPNNegotiation: two current nodes link with gdp-tunnel/2 and
// AES-GCM frames (where crypto/tls negotiates an AES suite, as it does on
// AES hardware); a node that offers or accepts only gdp-tunnel/1 (an older
// version) links with a current one either way round, both ends with
// ChaCha20-Poly1305, and PDUs flow both ways.
func TestRawALPNNegotiation(t *testing.T) {
	old := func(c *Config) { c.onlyV1 = true }
	tests := []struct {
		name         string
		dialer, lstn func(*Config)
		wantALPN     string
	}{
		{"current both", nil, nil, ALPN},
		{"old dialer", old, nil, ALPNv1},
		{"old listener", nil, old, ALPNv1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newTestNode(t, true, tc.dialer)
			b := newTestNode(t, true, tc.lstn)
			la, lb := pair(t, a, b, KindRaw)
			cs := la.(*link).qc.ConnectionState().TLS
			if cs.NegotiatedProtocol != tc.wantALPN {
				t.Fatalf("negotiated %q, want %q", cs.NegotiatedProtocol, tc.wantALPN)
			}
			t.Logf("%s, %s", cs.NegotiatedProtocol, tls.CipherSuiteName(cs.CipherSuite))
			wantAEAD := fmt.Sprintf("%T", chachaOf(t, make([]byte, 32)))
			if tc.wantALPN == ALPN && cs.CipherSuite != tls.TLS_CHACHA20_POLY1305_SHA256 {
				wantAEAD = fmt.Sprintf("%T", gcmOf(t, make([]byte, 16)))
			}
			for _, l := range []Link{la, lb} {
				if got := linkAEAD(l); got != wantAEAD {
					t.Errorf("raw frames sealed with %s, want %s (suite %s)", got, wantAEAD, tls.CipherSuiteName(cs.CipherSuite))
				}
			}
			// Each end's send key is the first bytes of its half of the 64
			// exported for (dialer index, listener index, epoch 0): what
			// its AEAD seals, one built here from the exporter opens.
			rl := la.(*link).raw
			km, err := cs.ExportKeyingMaterial(exporterLabel, exporterContext(rl.recv[0], rl.out.Load().remote, 0), 64)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range []struct {
				end string
				l   Link
				key []byte
			}{{"dialer", la, km[:32]}, {"listener", lb, km[32:]}} {
				indep := chachaOf(t, d.key)
				if tc.wantALPN == ALPN && cs.CipherSuite == tls.TLS_AES_128_GCM_SHA256 {
					indep = gcmOf(t, d.key[:16])
				}
				nonce := make([]byte, 12)
				sealed := d.l.(*link).raw.out.Load().aead.Seal(nil, nonce, []byte("pdu"), nil)
				if _, err := indep.Open(nil, nonce, sealed, nil); err != nil {
					t.Errorf("the %s's frames do not open with its key from the exporter: %v", d.end, err)
				}
			}
			for i := 0; i < 50; i++ {
				if err := la.Send(pattern(1000, i)); err != nil {
					t.Fatal(err)
				}
				if err := lb.Send(pattern(1000, i)); err != nil {
					t.Fatal(err)
				}
			}
			b.sink.wait(t, 50, 10*time.Second)
			a.sink.wait(t, 50, 10*time.Second)
		})
	}
}

func chachaOf(t *testing.T, key []byte) cipher.AEAD {
	a, err := chacha20poly1305.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func gcmOf(t *testing.T, key []byte) cipher.AEAD {
	b, _ := aes.NewCipher(key)
	a, err := cipher.NewGCM(b)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// withFrameLimits lowers the AES-GCM frame limits and the rekey check
// period for one test.
func withFrameLimits(t *testing.T, rekey, max uint64) {
	r, m, p := aesRekeyFrames, aesMaxFrames, rekeyCheckPeriod
	aesRekeyFrames, aesMaxFrames, rekeyCheckPeriod = rekey, max, 10*time.Millisecond
	t.Cleanup(func() { aesRekeyFrames, aesMaxFrames, rekeyCheckPeriod = r, m, p })
}

// TestRawRekeyByFrameCount: on an AES-GCM link the dialer starts a new
// epoch once either direction has sent the rekey count of frames in the
// current one, long before RekeyInterval — the listener's sends count too,
// though only the dialer rekeys — and nothing is lost.
func TestRawRekeyByFrameCount(t *testing.T) {
	for _, dir := range []string{"dialer sends", "listener sends"} {
		t.Run(dir, func(t *testing.T) {
			withFrameLimits(t, 100, 1<<20)
			a := newTestNode(t, true, func(c *Config) { c.RekeyInterval = time.Hour })
			b := newTestNode(t, true, nil)
			la, lb := pair(t, a, b, KindRaw)
			if la.(*link).raw.alg.rekeyFrames == 0 {
				t.Skip("crypto/tls negotiated ChaCha20-Poly1305 here (no AES hardware): no frame limit")
			}
			from, to := la, b
			if dir == "listener sends" {
				from, to = lb, a
			}
			const n = 1000
			for i := 0; i < n; i++ {
				if err := from.Send(pattern(200, i)); err != nil {
					t.Fatal(err)
				}
				if i%50 == 49 {
					time.Sleep(15 * time.Millisecond) // let the check see the count
				}
			}
			to.sink.wait(t, n, 10*time.Second)
			if r := a.ep.Stats().Rekeys; r < 3 {
				t.Errorf("%d rekeys after %d frames with a limit of 100 (interval an hour)", r, n)
			}
		})
	}
}

// TestRawKeyFrameLimit: a key never seals a frame past its AEAD's limit —
// without a rekey, PDUs beyond it are refused (ErrKeyLimit, counted as
// key_limit), whole ones and fragmented ones, and none is sent.
func TestRawKeyFrameLimit(t *testing.T) {
	withFrameLimits(t, 1<<30, 10) // no rekey by count
	a := newTestNode(t, true, func(c *Config) { c.RekeyInterval = time.Hour; c.RawMTU = 600 })
	b := newTestNode(t, true, nil)
	la, _ := pair(t, a, b, KindRaw)
	if la.(*link).raw.alg.maxFrames == 0 {
		t.Skip("crypto/tls negotiated ChaCha20-Poly1305 here (no AES hardware): no frame limit")
	}
	sent := 0
	for i := 0; i < 8; i++ {
		if err := la.Send(pattern(100, i)); err == nil {
			sent++
		} else if err != ErrKeyLimit {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if sent != 8 {
		t.Fatalf("%d of 8 sent below the limit", sent)
	}
	// 8 frames used: a 3-fragment PDU would pass the limit of 10
	if err := la.Send(pattern(1500, 9)); err != ErrKeyLimit {
		t.Fatalf("fragmented PDU past the limit: %v, want ErrKeyLimit", err)
	}
	if err := la.(*link).TrySend(pattern(1500, 10)); err != ErrKeyLimit {
		t.Fatalf("TrySend of a fragmented PDU past the limit: %v, want ErrKeyLimit", err)
	}
	if err := la.(*link).TrySend(pattern(100, 11)); err != ErrKeyLimit {
		t.Fatalf("TrySend past the limit: %v, want ErrKeyLimit", err)
	}
	b.sink.wait(t, 8, 5*time.Second)
	time.Sleep(100 * time.Millisecond)
	if got := b.sink.count(); got != 8 {
		t.Errorf("peer received %d PDUs, want the 8 below the limit", got)
	}
	if d := a.ep.Stats().Dropped(DropKeyLimit); d != 3 {
		t.Errorf("key_limit drops %d, want 3", d)
	}
}
