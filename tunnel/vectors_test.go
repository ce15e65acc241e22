package tunnel

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

var update = flag.Bool("update", false, "rewrite testdata golden vectors")

// frameVector is one golden raw frame (docs/PROTOCOL.md §4.4).
type frameVector struct {
	Name     string `json:"name"`
	Key      string `json:"key"`
	Frag     uint8  `json:"frag"`
	PacketID uint16 `json:"packet_id"`
	Index    uint32 `json:"index"`
	Counter  uint64 `json:"counter"`
	Payload  string `json:"payload"`
	Frame    string `json:"frame"`
}

func vectorKey() []byte {
	k := make([]byte, chacha20poly1305.KeySize)
	for i := range k {
		k[i] = byte(i)
	}
	return k
}

func makeFrameVectors() []frameVector {
	key := vectorKey()
	aead, _ := chacha20poly1305.New(key)
	in := []struct {
		name    string
		h       frameHeader
		payload []byte
	}{
		{"whole pdu", frameHeader{Frag: 0, PacketID: 1, Index: 0x01020304, Counter: 0}, []byte("gdp")},
		{"first of three fragments", frameHeader{Frag: fragMore | 0, PacketID: 0xbeef, Index: 0xa0b0c0d0, Counter: 41}, bytes.Repeat([]byte{0x55}, 16)},
		{"last of three fragments", frameHeader{Frag: 2, PacketID: 0xbeef, Index: 0xa0b0c0d0, Counter: 43}, []byte{0x01}},
		{"large counter", frameHeader{Frag: 0, PacketID: 0xffff, Index: 0xffffffff, Counter: 0x0102030405060708}, []byte("x")},
	}
	var out []frameVector
	for _, v := range in {
		buf := make([]byte, len(v.payload)+frameOverhead)
		var nonce [12]byte
		n := sealFrame(buf, v.h, aead, &nonce, v.payload)
		out = append(out, frameVector{
			Name: v.name, Key: hex.EncodeToString(key), Frag: v.h.Frag, PacketID: v.h.PacketID,
			Index: v.h.Index, Counter: v.h.Counter, Payload: hex.EncodeToString(v.payload),
			Frame: hex.EncodeToString(buf[:n]),
		})
	}
	return out
}

func loadJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func writeJSON(t testing.TB, path string, v any) {
	b, _ := json.MarshalIndent(v, "", "  ")
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFrameVectors(t *testing.T) {
	const path = "testdata/frames.json"
	if *update {
		writeJSON(t, path, makeFrameVectors())
	}
	var vs []frameVector
	loadJSON(t, path, &vs)
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			key, _ := hex.DecodeString(v.Key)
			payload, _ := hex.DecodeString(v.Payload)
			want, _ := hex.DecodeString(v.Frame)
			aead, err := chacha20poly1305.New(key)
			if err != nil {
				t.Fatal(err)
			}
			h := frameHeader{Frag: v.Frag, PacketID: v.PacketID, Index: v.Index, Counter: v.Counter}
			buf := make([]byte, len(payload)+frameOverhead)
			var nonce [12]byte
			if n := sealFrame(buf, h, aead, &nonce, payload); !bytes.Equal(buf[:n], want) {
				t.Fatalf("sealed\n%x\nwant\n%x", buf[:n], want)
			}
			got, why, ok := parseFrameHeader(want)
			if !ok || got != h {
				t.Fatalf("header %+v (%v), want %+v", got, why, h)
			}
			p, ok := openFrame(append([]byte(nil), want...), aead, &nonce, h.Counter)
			if !ok || !bytes.Equal(p, payload) {
				t.Fatalf("opened %x %v", p, ok)
			}
		})
	}
}

// ctrlVector is one golden control message.
type ctrlVector struct {
	Name  string `json:"name"`
	Type  uint8  `json:"type"`
	Arg   uint8  `json:"arg"`
	Index uint32 `json:"index"`
	Epoch uint32 `json:"epoch"`
	Port  uint16 `json:"port"`
	MTU   uint16 `json:"mtu"`
	Hex   string `json:"hex"`
}

func TestControlVectors(t *testing.T) {
	const path = "testdata/control.json"
	if *update {
		var vs []ctrlVector
		for _, m := range []struct {
			name string
			m    ctrlMsg
		}{
			{"hello raw", ctrlMsg{Type: msgHello, Arg: byte(KindRaw), Index: 0x11223344, Port: 4434, MTU: 1452}},
			{"hello quic", ctrlMsg{Type: msgHello, Arg: byte(KindQUIC)}},
			{"accept raw", ctrlMsg{Type: msgAccept, Index: 0x55667788, Port: 5000, MTU: 1400}},
			{"ready", ctrlMsg{Type: msgReady}},
			{"refuse no raw", ctrlMsg{Type: msgRefuse, Arg: refuseNoRaw}},
			{"rekey", ctrlMsg{Type: msgRekey, Index: 0x0a0b0c0d, Epoch: 7}},
			{"rekey ack", ctrlMsg{Type: msgRekeyAck, Index: 0x01010101, Epoch: 7}},
			{"rekey end", ctrlMsg{Type: msgRekeyEnd, Epoch: 7}},
			{"renew", ctrlMsg{Type: msgRenew, Index: 612}},
		} {
			b := m.m.encode()
			vs = append(vs, ctrlVector{m.name, m.m.Type, m.m.Arg, m.m.Index, m.m.Epoch, m.m.Port, m.m.MTU, hex.EncodeToString(b[:])})
		}
		writeJSON(t, path, vs)
	}
	var vs []ctrlVector
	loadJSON(t, path, &vs)
	for _, v := range vs {
		m := ctrlMsg{v.Type, v.Arg, v.Index, v.Epoch, v.Port, v.MTU}
		b := m.encode()
		if hex.EncodeToString(b[:]) != v.Hex {
			t.Errorf("%s: encoded %x, want %s", v.Name, b, v.Hex)
		}
		// Decode the golden bytes themselves, not a fresh encoding.
		raw, err := hex.DecodeString(v.Hex)
		if err != nil || len(raw) != ctrlLen {
			t.Fatalf("%s: bad vector hex %q", v.Name, v.Hex)
		}
		got, err := decodeCtrl([ctrlLen]byte(raw))
		if err != nil || got != m {
			t.Errorf("%s: the vector decodes to %+v, %v; want %+v", v.Name, got, err, m)
		}
	}
	bad := [ctrlLen]byte{0x09}
	if _, err := decodeCtrl(bad); err == nil {
		t.Error("unknown control type decoded")
	}
}

func TestExporterContextVector(t *testing.T) {
	got := hex.EncodeToString(exporterContext(0x01020304, 0x05060708, 9))
	if want := "010203040506070800000009"; got != want {
		t.Fatalf("context %s, want %s", got, want)
	}
}

// TestProtocolDoc keeps docs/PROTOCOL.md §4 and the vector files in step:
// every hex string the section quotes must be in a vector file.
func TestProtocolDoc(t *testing.T) {
	doc, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Skipf("no protocol doc: %v", err)
	}
	var frames []frameVector
	loadJSON(t, "testdata/frames.json", &frames)
	var ctrls []ctrlVector
	loadJSON(t, "testdata/control.json", &ctrls)
	quoted := []string{frames[0].Frame, frames[0].Payload, ctrls[0].Hex, hex.EncodeToString(exporterContext(0x01020304, 0x05060708, 9))}
	for _, v := range ctrls {
		if v.Name == "rekey" || v.Name == "renew" {
			quoted = append(quoted, v.Hex)
		}
	}
	for _, q := range quoted {
		if !bytes.Contains(doc, []byte(q)) {
			t.Errorf("docs/PROTOCOL.md does not quote %s", q)
		}
	}
	for _, s := range []string{ALPN, exporterLabel, "1.3.6.1.4.1.59999.1.1"} {
		if !bytes.Contains(doc, []byte(s)) {
			t.Errorf("docs/PROTOCOL.md does not name %q", s)
		}
	}
	if oidCredentials.String() != "1.3.6.1.4.1.59999.1.1" {
		t.Errorf("oid %s", oidCredentials)
	}
}

// TestFramesIndependentImplementation runs testdata/check_frames.py, a
// Python encoder written from docs/PROTOCOL.md §4.4, over the same vectors
// (skipped where python3 or its cryptography package is missing).
func TestFramesIndependentImplementation(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	if exec.Command(py, "-c", "import cryptography").Run() != nil {
		t.Skip("python3 has no cryptography package")
	}
	out, err := exec.Command(py, "testdata/check_frames.py").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// TestControlIndependentDecoder runs testdata/check_control.py, a decoder
// written in Python (standard library only) from docs/PROTOCOL.md §4.3,
// over testdata/control.json: -update writes the fields and the bytes from
// the same ctrlMsg, so only an independent reading of the layout shows an
// encoder that puts a field in the wrong place.
func TestControlIndependentDecoder(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3: the independent check of the control vectors did not run")
	}
	out, err := exec.Command(py, "testdata/check_control.py").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}
