#!/usr/bin/env python3
"""Decodes the recorded handoff streams in stream_vectors.json from
docs/PROTOCOL.md §12 alone, independently of the Go code (standard library;
zstd blobs through the `zstd` command, skipped with a note when it is
missing; LZ4 blocks by the decoder below). For every vector it checks

  * the fields the Go side wrote for each frame (type, JSON, blob header,
    records, acks, state) against what this decoder reads from the bytes;
  * what the fields must mean, from the images themselves: the base id is
    the digest of the base image; applying the records to the base rebuilds
    the source image byte for byte (after round 1 and at the end of a VM
    vector); every record's hash is the SHA-256 of the block it rebuilds;
    every ack counts the stream bytes up to its blob and the blobs so far;
    each round frame counts its blobs and records; the end frame's digests,
    state size and hash hold; the go frame is empty and last.

Exit status 0 when every vector checks out."""
import gzip
import hashlib
import json
import lzma
import shutil
import struct
import subprocess
import sys
from pathlib import Path

BLOCK = 4096
HELLO, BLOB, ROUND, STATE, END, GO = 1, 2, 3, 4, 5, 6
READY, ACK, RESULT = 16, 17, 18
ZERO, BASE, DUP, DATA, XOR = 1, 2, 3, 4, 5


class Bad(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Bad(what)


def image(spec):
    out = bytearray()
    for b in spec:
        fill = b.get("fill", "").encode()
        blk = bytearray((fill * (BLOCK // len(fill) + 1))[:BLOCK] if fill else BLOCK)
        for off, val in b.get("xor") or []:
            blk[off] ^= val
        if b.get("len"):
            blk = blk[: b["len"]]
        out += blk
    return bytes(out)


def block_hash(b):
    return hashlib.sha256(b.ljust(BLOCK, b"\0")).digest()


def blocks(img):
    return [img[i : i + BLOCK] for i in range(0, len(img), BLOCK)]


def digest(img):
    h = hashlib.sha256(struct.pack(">Q", len(img)))
    for b in blocks(img):
        h.update(block_hash(b))
    return h.hexdigest()


def frames(stream):
    out, off = [], 0
    while off < len(stream):
        check(len(stream) - off >= 5, "truncated frame header")
        typ, n = struct.unpack_from(">BI", stream, off)
        check(n <= 16 << 20, "frame longer than 16 MiB")
        check(off + 5 + n <= len(stream), "truncated frame payload")
        out.append((typ, stream[off + 5 : off + 5 + n], off + 5 + n))
        off += 5 + n
    return out


def lz4_block(src, size):
    out, i = bytearray(), 0

    def more(n):
        nonlocal i
        while True:
            b = src[i]
            i += 1
            n += b
            if b != 255:
                return n

    while True:
        tok = src[i]
        i += 1
        lit = tok >> 4
        if lit == 15:
            lit = more(lit)
        out += src[i : i + lit]
        i += lit
        if i >= len(src):
            break
        off = src[i] | src[i + 1] << 8
        i += 2
        check(0 < off <= len(out), "lz4: bad offset")
        ml = tok & 15
        if ml == 15:
            ml = more(ml)
        for _ in range(ml + 4):
            out.append(out[-off])
    check(len(out) == size, "lz4: wrong length")
    return bytes(out)


class NoZstd(Exception):
    pass


def decompress(codec, data, size):
    if codec == 0:
        out = data
    elif codec == 1:
        out = lz4_block(data, size)
    elif codec == 2:
        out = gzip.decompress(data)
    elif codec == 3:
        exe = shutil.which("zstd")
        if not exe:
            raise NoZstd()
        out = subprocess.run([exe, "-d", "-c", "-q"], input=data, capture_output=True, check=True).stdout
    elif codec == 4:
        out = lzma.decompress(data, format=lzma.FORMAT_XZ)
    else:
        raise Bad("unknown codec %d" % codec)
    check(len(out) == size, "codec %d: %d bytes, header says %d" % (codec, len(out), size))
    return out


def blob(p):
    """Returns the header fields and the records of a blob payload."""
    check(len(p) >= 10, "blob shorter than its header")
    codec, level, nrec, raw_len = struct.unpack_from(">BBII", p)
    raw = decompress(codec, p[10:], raw_len)
    recs, data = [], raw[42 * nrec :]
    for i in range(nrec):
        kind, img = raw[42 * i], raw[42 * i + 1]
        (blk,) = struct.unpack_from("<Q", raw, 42 * i + 2)
        h = raw[42 * i + 10 : 42 * i + 42]
        d = b""
        if kind in (DATA, XOR):
            check(len(data) >= BLOCK, "data section too short")
            d, data = data[:BLOCK], data[BLOCK:]
        else:
            check(kind in (ZERO, BASE, DUP), "unknown record kind %d" % kind)
        recs.append({"kind": kind, "image": img, "block": blk, "hash": h.hex(), "data": d.hex()})
    check(not data, "stray data bytes")
    return {"codec": codec, "level": level, "records": nrec, "raw_len": raw_len}, recs


def run(v):
    imgs = {k: image(s) for k, s in v["images"].items()}
    base = imgs[v["base"]]
    base_blocks = blocks(base)
    by_hash = {block_hash(b): b for b in base_blocks}
    want = iter([f for f in v["frames"] if f["dir"] == "s2r"])
    s2r = frames(bytes.fromhex(v["s2r"]))
    r2s = frames(bytes.fromhex(v["r2s"]))

    typ, p, _ = s2r[0]
    check(typ == HELLO, "first frame is not a hello")
    hello = json.loads(p)
    check(hello["version"] == 1 and hello["id"] == v["name"], "hello version/id")
    check(hello["vm"] == ("state" in v), "hello vm flag")
    (im,) = hello["images"]
    check(im["name"] == "disk", "image name")
    check(im["base"] == digest(base) and hello["bases"] == [im["base"]], "base id is not the base image's digest")
    final = imgs[v["final"]]
    check(im["size"] == len(final), "image size")
    # The destination's copy: the base resized to the image's size.
    cur = [bytearray(b.ljust(BLOCK, b"\0")) for b in base_blocks]
    n = (im["size"] + BLOCK - 1) // BLOCK
    cur = (cur + [bytearray(BLOCK) for _ in range(n)])[:n]
    sent, pending = {}, []
    nblobs = round_blobs = round_recs = 0
    blob_ends, state, zstd_skipped = [], b"", False

    def apply(r):
        blk, h = r["block"], bytes.fromhex(r["hash"])
        check(r["image"] == 0 and blk < n, "record out of range")
        if r["kind"] == ZERO:
            b = bytes(BLOCK)
        elif r["kind"] == BASE:
            check(h in by_hash, "base record names no base block")
            b = by_hash[h].ljust(BLOCK, b"\0")
        elif r["kind"] == DUP:
            if h not in sent:
                pending.append(r)
                return
            b = sent[h]
        elif r["kind"] == DATA:
            b = bytes.fromhex(r["data"])
        else:
            check(blk < len(base_blocks), "xor record beyond the base")
            ref = base_blocks[blk].ljust(BLOCK, b"\0")
            b = bytes(x ^ y for x, y in zip(bytes.fromhex(r["data"]), ref))
        check(hashlib.sha256(b).digest() == h, "block %d: hash does not match the rebuilt block" % blk)
        if r["kind"] in (DATA, XOR):
            sent[h] = b
        cur[blk][:] = b

    def rebuilt():
        return b"".join(cur)[: im["size"]]

    rounds = 0
    for i, (typ, p, end_off) in enumerate(s2r):
        w = next(want)
        check(w["type"] == typ, "frame %d: type %d, vector says %d" % (i, typ, w["type"]))
        if typ in (HELLO, ROUND, END):
            check(json.loads(p) == json.loads(json.dumps(w["json"])), "frame %d: JSON differs" % i)
        if typ == BLOB:
            try:
                hdr, recs = blob(p)
            except NoZstd:
                zstd_skipped = True
                hdr, recs = {k: w[k] for k in ("codec", "level", "records", "raw_len")}, w["recs"]
            for k, x in hdr.items():
                check(w[k] == x, "frame %d: %s %r, vector says %r" % (i, k, x, w[k]))
            check(recs == [dict(r, data=r.get("data", "")) for r in w["recs"]], "frame %d: records differ" % i)
            for r in recs:
                apply(r)
            nblobs += 1
            round_blobs += 1
            round_recs += len(recs)
            blob_ends.append(end_off)
        elif typ == ROUND:
            rounds += 1
            rd = json.loads(p)
            check(rd["round"] == rounds and rd["blobs"] == round_blobs and rd["records"] == round_recs, "round frame counts")
            round_blobs = round_recs = 0
            todo, pending[:] = pending[:], []
            for r in todo:
                check(bytes.fromhex(r["hash"]) in sent, "dup of a block never sent")
                apply(r)
            if rounds == 1 and v.get("round1"):
                check(rebuilt() == imgs[v["round1"]], "round 1 does not rebuild the image as it was")
        elif typ == STATE:
            check(w["state"] == p.hex(), "state chunk differs")
            state += p
        elif typ == END:
            e = json.loads(p)
            check(not pending, "dups left unresolved at the end")
            check(rebuilt() == final, "the records do not rebuild the source image")
            check(e["digests"] == [digest(final)], "end digest")
            check(e["state_size"] == len(state) and e["state_hash"] == hashlib.sha256(state).hexdigest(), "end state")
            check(state == bytes.fromhex(v.get("state", "")), "device state")
            check(e["blobs"] == nblobs, "end frame counts %d blobs, %d were sent" % (e["blobs"], nblobs))
        elif typ == GO:
            check(p == b"" and i == len(s2r) - 1, "go frame not empty or not last")
        elif typ != HELLO:
            raise Bad("frame %d: sender frame type %d" % (i, typ))
    check(s2r[-1][0] == GO, "the sender did not end with go")

    want = [f for f in v["frames"] if f["dir"] == "r2s"]
    check(len(want) == len(r2s), "receiver frame count")
    acks = 0
    for i, ((typ, p, _), w) in enumerate(zip(r2s, want)):
        check(w["type"] == typ, "receiver frame %d type" % i)
        if typ in (READY, RESULT):
            check(json.loads(p) == w["json"] and json.loads(p)["ok"] is True, "receiver frame %d JSON" % i)
            check(typ == READY if i == 0 else typ == RESULT and i == len(r2s) - 1, "ready first, result last")
        elif typ == ACK:
            check(len(p) == 16, "ack length")
            nbytes, nb = struct.unpack(">QQ", p)
            check((nbytes, nb) == (w["bytes"], w["blobs"]), "ack fields")
            acks += 1
            check(nb == acks and nbytes == blob_ends[nb - 1], "ack %d: %d bytes, %d blobs" % (acks, nbytes, nb))
        else:
            raise Bad("receiver frame type %d" % typ)
    check(acks == nblobs, "one ack per blob")
    return zstd_skipped


def main():
    vectors = json.loads(Path(__file__).with_name("stream_vectors.json").read_text())
    bad = 0
    for v in vectors:
        try:
            skipped = run(v)
            print("ok   %s%s" % (v["name"], " (zstd blobs: no zstd command, header fields only)" if skipped else ""))
        except (Bad, KeyError, ValueError, IndexError, StopIteration, subprocess.CalledProcessError, EOFError, lzma.LZMAError) as e:
            print("BAD  %s: %s: %s" % (v["name"], type(e).__name__, e))
            bad += 1
    return 1 if bad or not vectors else 0


if __name__ == "__main__":
    sys.exit(main())
