package handoffd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// evilHandoff is a sender stream built frame by frame: what a malicious
// (or broken) source may send an agent. The genuine one rebuilds target
// from the base; each case of TestReceiverRefusesMaliciousSender changes
// one thing.
type evilHandoff struct {
	first  []byte // replaces the hello frame when set (a raw frame)
	hello  hello
	blobs  [][]record
	rounds bool   // a round-end frame after every blob
	state  []byte // device state frames (one)
	end    endMsg
	extra  []byte // a raw frame sent after the blobs, before the end
	noEnd  bool
	noGo   bool
}

func (h *evilHandoff) bytes(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	if h.first != nil {
		b.Write(h.first)
	} else if err := writeJSON(&b, frameHello, h.hello); err != nil {
		t.Fatal(err)
	}
	for _, recs := range h.blobs {
		p, _, err := encodeBlob(Mode{Codec: CodecNone}, len(recs), rawBlob(recs))
		if err != nil {
			t.Fatal(err)
		}
		writeFrame(&b, frameBlob, p)
		if h.rounds {
			writeJSON(&b, frameRound, roundEnd{Round: 1, Blobs: 1, Records: int64(len(recs))})
		}
	}
	b.Write(h.extra)
	if h.state != nil {
		writeFrame(&b, frameState, h.state)
	}
	if !h.noEnd {
		writeJSON(&b, frameEnd, h.end)
	}
	if !h.noGo {
		writeFrame(&b, frameGo, nil)
	}
	return b.Bytes()
}

// evilEnv is a destination: a base cache holding one 6-block base.
type evilEnv struct {
	cache  *BaseCache
	baseID string
	base   []byte
	root   string // holds the cache and out
	out    string // ReceiveConfig.Dir
}

const evilBlocks = 6

func newEvilEnv(t *testing.T) *evilEnv {
	t.Helper()
	root := t.TempDir()
	rng := rngFor(41)
	base := make([]byte, evilBlocks*BlockSize)
	for i := range evilBlocks {
		if i != 2 { // block 2 all zeros
			copy(base[i*BlockSize:], textBlock(rng))
		}
	}
	p := filepath.Join(root, "base.img")
	if err := os.WriteFile(p, base, 0o644); err != nil {
		t.Fatal(err)
	}
	cache, err := OpenBaseCache(filepath.Join(root, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := cache.Add(p, "evil test base")
	if err != nil {
		t.Fatal(err)
	}
	return &evilEnv{cache: cache, baseID: m.ID, base: base, root: root, out: filepath.Join(root, "out")}
}

func blockOf(img []byte, i int) []byte { return img[i*BlockSize : (i+1)*BlockSize] }

// genuine is a handoff of a 6-block image made of every record kind:
// block 0 = the base's block 3 (base), 1 zeros, 2 new data, 3 a duplicate
// of block 2, 4 the base's block 4 edited (xor), 5 untouched (the base
// copy's own). It returns the stream and the image it rebuilds.
func (e *evilEnv) genuine() (*evilHandoff, []byte) {
	target := append([]byte(nil), e.base...)
	copy(blockOf(target, 0), blockOf(e.base, 3))
	clear(blockOf(target, 1))
	data := textBlock(rngFor(42))
	copy(blockOf(target, 2), data)
	copy(blockOf(target, 3), data)
	for i := 100; i < 140; i++ {
		target[4*BlockSize+i] ^= 0x5a
	}
	delta := make([]byte, BlockSize)
	for i := range delta {
		delta[i] = target[4*BlockSize+i] ^ e.base[4*BlockSize+i]
	}
	hd := hashBlock(data)
	recs := []record{
		{Kind: recBase, Image: 0, Block: 0, Hash: hashBlock(blockOf(e.base, 3))},
		{Kind: recZero, Image: 0, Block: 1, Hash: zeroHash},
		{Kind: recDup, Image: 0, Block: 3, Hash: hd}, // before its data: resolved at the round end
		{Kind: recData, Image: 0, Block: 2, Hash: hd, Data: data},
		{Kind: recXOR, Image: 0, Block: 4, Hash: hashBlock(blockOf(target, 4)), Data: delta},
	}
	hs := make([]Hash, evilBlocks)
	for i := range hs {
		hs[i] = hashBlock(blockOf(target, i))
	}
	d := digestOf(int64(len(target)), hs)
	empty := sha256.Sum256(nil)
	return &evilHandoff{
		hello:  hello{Version: 1, ID: "h1", Images: []helloImage{{Name: "disk", Base: e.baseID, Size: int64(len(target))}}, Bases: []string{e.baseID}},
		blobs:  [][]record{recs},
		rounds: true,
		end:    endMsg{Digests: []string{hex.EncodeToString(d[:])}, StateHash: hex.EncodeToString(empty[:]), Blobs: 1},
	}, target
}

func (e *evilEnv) receive(t *testing.T, stream []byte) (*Received, error, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := &replayConn{Reader: bytes.NewReader(stream)}
	rec, err := Receive(ctx, c, ReceiveConfig{Cache: e.cache, Dir: e.out, Logger: zap.NewNop(), IdleTimeout: time.Second})
	return rec, err, c.out.Bytes()
}

// answers decodes the receiver's frames to the sender.
func answers(t *testing.T, out []byte) (typs []byte, last result) {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(out))
	for {
		typ, p, err := readFrame(br, nil)
		if err != nil {
			return typs, last
		}
		typs = append(typs, typ)
		if typ == frameReady || typ == frameResult {
			last = result{}
			if err := json.Unmarshal(p, &last); err != nil {
				t.Fatalf("answer frame %d: %v", typ, err)
			}
		}
	}
}

// TestReceiverRefusesMaliciousSender (Session 14): the agent's receiver
// takes nothing on a sender's word. A hello asking for a result outside
// its directory, too many or oddly named images, sizes out of range or a
// base it did not list; a record for another image or beyond the image, a
// block whose rebuilt bytes do not hash to what the record claims (zero,
// base, data, xor), a base block it does not have, an xor beyond the base,
// a duplicate of a block never sent; device state in an image-pair
// handoff; an end frame whose digests, blob count, state size or state
// hash do not match what arrived — each is refused with nothing left in
// the result directory (nor outside it), the refusal told to the sender
// as a result frame that is not ok. The genuine stream commits the exact
// image; without the sender's go the result says so (a VM is not resumed
// from a transfer its source may have resumed).
func TestReceiverRefusesMaliciousSender(t *testing.T) {
	e := newEvilEnv(t)
	good, target := e.genuine()
	t.Run("genuine", func(t *testing.T) {
		defer os.RemoveAll(e.out)
		rec, err, out := e.receive(t, good.bytes(t))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(rec.Images["disk"])
		if err != nil || !bytes.Equal(got, target) || !rec.Go {
			t.Fatalf("committed image differs from the sender's (%v) or no go (%v)", err, rec.Go)
		}
		if rec.Dir != filepath.Join(e.out, "h1") {
			t.Fatalf("committed in %s", rec.Dir)
		}
		typs, res := answers(t, out)
		if len(typs) != 3 || typs[0] != frameReady || typs[1] != frameAck || typs[2] != frameResult || !res.OK || res.Dir != rec.Dir {
			t.Fatalf("answers %v, result %+v: want ready, ack, ok result naming %s", typs, res, rec.Dir)
		}
	})
	t.Run("no go", func(t *testing.T) {
		defer os.RemoveAll(e.out)
		h := *good
		h.noGo = true
		rec, err, _ := e.receive(t, h.bytes(t))
		if err != nil || rec.Go {
			t.Fatalf("committed without the sender's go: %v, go %v; want committed, not go", err, rec != nil && rec.Go)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		defer os.RemoveAll(e.out)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		rec, err := Receive(ctx, &replayConn{Reader: bytes.NewReader(good.bytes(t))}, ReceiveConfig{Cache: e.cache, Dir: e.out, Logger: zap.NewNop()})
		if !errors.Is(err, context.Canceled) || rec != nil || len(committed(t, e.out)) != 0 {
			t.Fatalf("a cancelled receive: %v, %v; want context.Canceled and nothing", rec, err)
		}
	})
	t.Run("no cache or dir", func(t *testing.T) {
		for _, cfg := range []ReceiveConfig{{Dir: e.out}, {Cache: e.cache}} {
			if rec, err := Receive(context.Background(), &replayConn{Reader: bytes.NewReader(good.bytes(t))}, cfg); err == nil || rec != nil {
				t.Fatalf("cache %v, dir %q: %v, %v; want refused", cfg.Cache != nil, cfg.Dir, rec, err)
			}
		}
	})
	// The sender's share of the staging space (the agent's
	// max_bytes_per_peer) holds the declared images and no more: device
	// state, and a block moved to the spill file, are refused.
	t.Run("staged beyond the share", func(t *testing.T) {
		for _, tc := range []struct {
			name, want string
			change     func(h *evilHandoff)
		}{
			{"device state", "device state", func(h *evilHandoff) {
				h.hello.VM = true
				h.state = []byte("device state")
				sum := sha256.Sum256(h.state)
				h.end.StateSize, h.end.StateHash = int64(len(h.state)), hex.EncodeToString(sum[:])
			}},
			{"a spilled block", "spill", func(h *evilHandoff) {
				// block 2's data overwritten while it is the only copy of
				// data block 3 duplicates: it moves to the spill file
				recs := append([]record(nil), h.blobs[0]...)
				recs = append(recs, record{Kind: recData, Block: 2, Hash: hashBlock(blockOf(e.base, 5)), Data: blockOf(e.base, 5)})
				h.blobs = [][]record{recs}
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				defer os.RemoveAll(e.out)
				h := *good
				tc.change(&h)
				declared := int64(evilBlocks * BlockSize)
				var staged int64
				cfg := ReceiveConfig{Cache: e.cache, Dir: e.out, Logger: zap.NewNop(), Reserve: func(n int64) error {
					if staged+n > declared {
						return ErrPeerBytes
					}
					staged += n
					return nil
				}}
				rec, err := Receive(context.Background(), &replayConn{Reader: bytes.NewReader(h.bytes(t))}, cfg)
				if !errors.Is(err, ErrPeerBytes) || rec != nil || !strings.Contains(err.Error(), tc.want) || len(committed(t, e.out)) != 0 {
					t.Fatalf("%s beyond the share: %v, %v; want ErrPeerBytes (%s) and nothing", tc.name, rec, err, tc.want)
				}
			})
		}
	})
	t.Run("min_free_bytes 0 is no guard", func(t *testing.T) {
		defer os.RemoveAll(e.out)
		cfg := ReceiveConfig{Cache: e.cache, Dir: e.out, Logger: zap.NewNop(), FreeBytes: func(string) (uint64, error) { return 0, nil }}
		if _, err := Receive(context.Background(), &replayConn{Reader: bytes.NewReader(good.bytes(t))}, cfg); err != nil {
			t.Fatalf("no free-space guard, a file system reporting 0 free: %v", err)
		}
	})
	raw := func(typ byte, p []byte) []byte {
		var b bytes.Buffer
		writeFrame(&b, typ, p)
		return b.Bytes()
	}
	withRecs := func(f func(recs []record) []record) func(*evilHandoff) {
		return func(h *evilHandoff) {
			recs := append([]record(nil), h.blobs[0]...)
			h.blobs = [][]record{f(recs)}
		}
	}
	img := func(f func(im *helloImage)) func(*evilHandoff) {
		return func(h *evilHandoff) {
			h.hello.Images = append([]helloImage(nil), h.hello.Images...)
			f(&h.hello.Images[0])
		}
	}
	other := textBlock(rngFor(43))
	tests := []struct {
		name    string
		change  func(*evilHandoff)
		pre     func(t *testing.T) // run before the receive
		wantErr string
	}{
		{"hello not first", func(h *evilHandoff) { h.first = raw(frameEnd, []byte("{}")) }, nil, "want hello"},
		{"hello not JSON", func(h *evilHandoff) { h.first = raw(frameHello, []byte("{")) }, nil, "hello: unexpected end of JSON input"},
		{"version 2", func(h *evilHandoff) { h.hello.Version = 2 }, nil, "version 2"},
		{"id climbing out", func(h *evilHandoff) { h.hello.ID = "../escape" }, nil, "handoff id"},
		{"id absolute", func(h *evilHandoff) { h.hello.ID = "/tmp/escape" }, nil, "handoff id"},
		{"id empty", func(h *evilHandoff) { h.hello.ID = "" }, nil, "handoff id"},
		{"id of 33", func(h *evilHandoff) { h.hello.ID = strings.Repeat("a", 33) }, nil, "handoff id"},
		{"id committed already", nil, func(t *testing.T) { os.MkdirAll(filepath.Join(e.out, "h1"), 0o755) }, "already committed"},
		{"no images", func(h *evilHandoff) { h.hello.Images = nil }, nil, "0 images"},
		{"8 images (the most) taken", func(h *evilHandoff) {
			h.hello.Images = nil
			for i := range maxImages {
				h.hello.Images = append(h.hello.Images, helloImage{Name: "d" + string(rune('a'+i)), Base: e.baseID, Size: BlockSize})
			}
			h.blobs, h.end.Blobs = nil, 0
		}, nil, "end: 1 digests for 8 images"},
		{"9 images", func(h *evilHandoff) {
			h.hello.Images = nil
			for i := range maxImages + 1 {
				h.hello.Images = append(h.hello.Images, helloImage{Name: "d" + string(rune('a'+i)), Base: e.baseID, Size: BlockSize})
			}
		}, nil, "9 images"},
		{"image name climbing out", img(func(im *helloImage) { im.Name = "../../disk" }), nil, "image name"},
		{"image named state", img(func(im *helloImage) { im.Name = "state" }), nil, "image name"},
		{"image named blocks", img(func(im *helloImage) { im.Name = "blocks" }), nil, "image name"},
		{"image named twice", func(h *evilHandoff) { h.hello.Images = append(h.hello.Images, h.hello.Images[0]) }, nil, "image name"},
		{"image size 0", img(func(im *helloImage) { im.Size = 0 }), nil, "out of range"},
		{"image size negative", img(func(im *helloImage) { im.Size = -BlockSize }), nil, "out of range"},
		{"image over 1 TiB", img(func(im *helloImage) { im.Size = maxImageSize + 1 }), nil, "out of range"},
		{"base not listed", func(h *evilHandoff) { h.hello.Bases = nil }, nil, "not among the listed bases"},
		{"base not held", img(func(im *helloImage) { im.Base = strings.Repeat("ab", 32) }), nil, ErrNoBase.Error()},
		{"record for a second image", withRecs(func(r []record) []record { r[1].Image = 1; return r }), nil, "record for image 1 of 1"},
		{"record beyond the image", withRecs(func(r []record) []record { r[1].Block = evilBlocks; return r }), nil, "beyond its 6 blocks"},
		{"zero with another hash", withRecs(func(r []record) []record { r[1].Hash = hashBlock(other); return r }), nil, "zero record with another hash"},
		{"base block not held", withRecs(func(r []record) []record { r[0].Hash = hashBlock(other); return r }), nil, "no base block"},
		{"data not matching its hash", withRecs(func(r []record) []record {
			r[3].Data = other
			return r
		}), nil, "rebuilt block hash"},
		{"base block at another hash's place", withRecs(func(r []record) []record {
			// the base has this block, but the record says it is block 1's bytes
			r[0].Hash = hashBlock(blockOf(e.base, 0))
			r[0].Block = 1
			return r[:1]
		}), nil, "digest of the rebuilt image"},
		{"xor not matching its hash", withRecs(func(r []record) []record {
			r[4].Data = make([]byte, BlockSize) // the base block itself
			return r
		}), nil, "rebuilt block hash"},
		{"xor beyond the base", func(h *evilHandoff) {
			h.hello.Images = []helloImage{{Name: "disk", Base: e.baseID, Size: (evilBlocks + 1) * BlockSize}}
			h.blobs = [][]record{{{Kind: recXOR, Block: evilBlocks, Hash: hashBlock(other), Data: other}}}
		}, nil, "xor beyond the base"},
		{"duplicate of a block never sent", withRecs(func(r []record) []record {
			r[2].Hash = hashBlock(other)
			return r
		}), nil, "never sent"},
		{"duplicate never sent, no round end", func(h *evilHandoff) {
			withRecs(func(r []record) []record { r[2].Hash = hashBlock(other); return r })(h)
			h.rounds = false
		}, nil, "never sent"},
		{"bad blob header", func(h *evilHandoff) {
			h.blobs = nil
			h.extra = raw(frameBlob, make([]byte, blobHeaderLen))
		}, nil, "blob header"},
		{"unknown frame", func(h *evilHandoff) { h.extra = raw(9, nil) }, nil, "unexpected frame type 9"},
		{"state in a pair handoff", func(h *evilHandoff) { h.state = []byte("state") }, nil, "device state in an image-pair handoff"},
		{"round end not JSON", func(h *evilHandoff) { h.extra = raw(frameRound, []byte("{")) }, nil, "round end: unexpected end of JSON input"},
		{"end not JSON", func(h *evilHandoff) { h.noEnd, h.extra = true, raw(frameEnd, []byte("{")) }, nil, "end: unexpected end of JSON input"},
		{"stream cut before the end", func(h *evilHandoff) { h.noEnd, h.noGo = true, true }, nil, "EOF"},
		{"two digests", func(h *evilHandoff) { h.end.Digests = append(h.end.Digests, h.end.Digests[0]) }, nil, "2 digests for 1 images"},
		{"a blob fewer than counted", func(h *evilHandoff) { h.end.Blobs = 2 }, nil, "2 blobs, 1 arrived"},
		{"a record left out", withRecs(func(r []record) []record { return r[:4] }), nil, "digest of the rebuilt image"},
		{"digest of another image", func(h *evilHandoff) {
			d := digestOf(evilBlocks*BlockSize, make([]Hash, evilBlocks))
			h.end.Digests = []string{hex.EncodeToString(d[:])}
		}, nil, "digest of the rebuilt image"},
		{"state size not what arrived", func(h *evilHandoff) { h.end.StateSize = 5 }, nil, "device state: 0 bytes, the source sent 5"},
		{"state hash not what arrived", func(h *evilHandoff) { h.end.StateHash = strings.Repeat("00", 32) }, nil, "hash does not match"},
		{"vm state hash not what arrived", func(h *evilHandoff) {
			h.hello.VM = true
			h.state = []byte("device state")
			h.end.StateSize = int64(len(h.state))
		}, nil, "hash does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.RemoveAll(e.out)
			defer os.RemoveAll(e.out)
			h := *good
			h.blobs = append([][]record(nil), good.blobs...)
			if tt.change != nil {
				tt.change(&h)
			}
			var before []string
			if tt.pre != nil {
				tt.pre(t)
				before = committed(t, e.out)
			}
			rec, err, out := e.receive(t, h.bytes(t))
			if err == nil || rec != nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("received %v, err %v; want refused with %q", rec != nil, err, tt.wantErr)
			}
			if got := committed(t, e.out); len(got) != len(before) {
				t.Fatalf("refused handoff left %v in the result directory (before: %v)", got, before)
			}
			for _, p := range []string{filepath.Join(e.root, "escape"), "/tmp/escape", filepath.Join(e.root, "disk")} {
				if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("%s exists after a refused handoff", p)
				}
			}
			typs, res := answers(t, out)
			if len(typs) == 0 || (typs[len(typs)-1] != frameResult && typs[len(typs)-1] != frameReady) || res.OK || res.Error == "" {
				t.Fatalf("answers %v, last %+v: want a refusal that says why", typs, res)
			}
		})
	}
}
