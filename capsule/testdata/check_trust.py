#!/usr/bin/env python3
"""Checks the durability receipt and placement record vectors
(trust_vectors.txt, docs/PROTOCOL.md §8.7) and the capsule messages that
carry them (../../capsuled/wire/testdata/vectors.txt: create-signed,
append-receipt) independently of the Go code: its own CBOR decoder, its own
COSE Sig_structure, the Python `cryptography` package's Ed25519 and
hashlib's SHA-256. Exit status 0 when every check passes."""
import hashlib
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

HERE = Path(__file__).parent


def load(path):
    out = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, hx = line.split(" ", 1)
            out[name] = bytes.fromhex(hx)
    return out


def decode(b, i=0):
    """Decodes one CBOR item at b[i:]: (value, next offset). Definite
    lengths, shortest heads; tags come back as ('tag', n, value)."""
    ib = b[i]
    major, ai = ib >> 5, ib & 0x1F
    i += 1
    if ai < 24:
        arg = ai
    elif ai in (24, 25, 26, 27):
        n = 1 << (ai - 24)
        arg = int.from_bytes(b[i:i + n], "big")
        assert arg >= (24 if n == 1 else 1 << (4 * n)), "non-shortest head"
        i += n
    else:
        raise ValueError("indefinite length")
    if major == 0:
        return arg, i
    if major == 2:
        return bytes(b[i:i + arg]), i + arg
    if major == 3:
        return b[i:i + arg].decode(), i + arg
    if major == 4:
        out = []
        for _ in range(arg):
            v, i = decode(b, i)
            out.append(v)
        return out, i
    if major == 5:
        out, last = {}, None
        for _ in range(arg):
            start = i
            k, i = decode(b, i)
            kb = b[start:i]
            assert last is None or (len(last), last) < (len(kb), kb), "map keys not in canonical order"
            last = kb
            v, i = decode(b, i)
            out[k] = v
        return out, i
    if major == 6:
        v, i = decode(b, i)
        return ("tag", arg, v), i
    raise ValueError("major type %d" % major)


def whole(b):
    v, n = decode(b)
    assert n == len(b), "trailing bytes"
    return v


def head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for ai, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | ai]) + n.to_bytes(size, "big")


def bstr(b):
    return head(2, len(b)) + b


def sig_structure(aad, payload):
    return head(4, 4) + head(3, 10) + b"Signature1" + bstr(b"\xa1\x01\x27") + bstr(aad) + bstr(payload)


def cose(b, aad, key):
    """Opens a tagged COSE_Sign1, verifies its Ed25519 signature with key
    (raw 32 bytes) and returns (payload map, payload bytes, sig structure)."""
    tag = whole(b)
    assert tag[0] == "tag" and tag[1] == 18, "not tag 18"
    prot, unprot, payload, sig = tag[2]
    assert prot == b"\xa1\x01\x27" and unprot == {}, "headers"
    si = sig_structure(aad, payload)
    Ed25519PublicKey.from_public_bytes(key).verify(sig, si)
    return whole(payload), payload, si


def main():
    v = load(HERE / "trust_vectors.txt")
    checks = 0

    def ok(cond, what):
        nonlocal checks
        if not cond:
            print("FAIL:", what)
            sys.exit(1)
        checks += 1

    # Names are SHA-256 of canonical metadata; keys sit at map key 2.
    meta = whole(v["capsule.meta"])
    ok(hashlib.sha256(v["capsule.meta"]).digest() == v["capsule"], "capsule name is SHA-256 of its metadata")
    ok(meta[1] == 1 and meta[2] == v["owner.public"] and meta[3] == v["writer.public"], "capsule metadata: kind 1, owner, writer")
    smeta = whole(v["server.meta"])
    ok(hashlib.sha256(v["server.meta"]).digest() == v["server"], "server name is SHA-256 of its metadata")
    ok(smeta[1] == 3 and smeta[2] == v["server.public"], "server metadata: kind 3, key")

    # The heartbeat, signed by the writer; its digest is SHA-256 of the wire form.
    hb, _, _ = cose(v["heartbeat.wire"], b"gdpnet v1 heartbeat", v["writer.public"])
    ok(hb[1] == v["capsule"] and hb[2] == 1, "heartbeat: capsule, seqno 1")
    ok(hashlib.sha256(v["heartbeat.wire"]).digest() == v["heartbeat.digest"], "heartbeat digest")

    # Receipt: {1: capsule, 2: seqno, 3: heartbeat digest, 4: server}, signed by the server.
    rc, payload, si = cose(v["receipt.wire"], b"gdpnet v1 receipt", v["server.public"])
    ok(payload == v["receipt.body"] and si == v["receipt.sigstructure"], "receipt body and Sig_structure")
    ok(sorted(rc) == [1, 2, 3, 4], "receipt keys")
    ok(rc[1] == v["capsule"] and rc[2] == 1 and rc[3] == v["heartbeat.digest"] and rc[4] == v["server"], "receipt fields")
    try:
        cose(v["receipt.wire"], b"gdpnet v1 receipt", v["owner.public"])
        ok(False, "receipt verifies under the owner key")
    except Exception:
        ok(True, "")

    # Placement: {1: capsule, 2: [replicas], 3: w, 4: issued}, signed by the owner.
    pl, payload, si = cose(v["placement.wire"], b"gdpnet v1 placement", v["owner.public"])
    ok(payload == v["placement.body"] and si == v["placement.sigstructure"], "placement body and Sig_structure")
    ok(pl[1] == v["capsule"] and pl[3] == 2 and pl[4] == 1_700_000_000, "placement capsule, w=2, issued")
    ok(pl[2] == [v["server"], b"\xbb" + bytes(31), b"\xcc" + bytes(31)], "placement replicas")
    try:
        cose(v["placement.wire"], b"gdpnet v1 receipt", v["owner.public"])
        ok(False, "placement signature passes as a receipt's")
    except Exception:
        ok(True, "")

    # The capsule messages that carry them (docs/PROTOCOL.md §8.6).
    w = load(HERE.parent.parent / "capsuled" / "wire" / "testdata" / "vectors.txt")
    create = whole(w["create-signed"])
    ok(create[1] == 1 and create[2] == 10 and 3 not in create, "CREATE: op 1, id 10, a request")
    ok(create[4] == v["capsule"] and create[15] == v["capsule.meta"], "CREATE: capsule and metadata")
    ok(create[26] == v["placement.wire"], "CREATE carries the placement record at key 26")
    ok(create[17] == pl[2] and create[18] == 2, "CREATE replicas and w match the record")
    ad, _, _ = cose(create[16], b"gdpnet v1 adcert", v["owner.public"])
    ok(ad[1] == 1 and ad[2] == v["capsule"] and ad[3] == v["server"], "AdCert: kind 1, capsule -> server, owner-signed")
    resp = whole(w["append-receipt"])
    ok(resp[1] == 2 and resp[2] == 11 and resp[3] == 200 and resp[19] == 1, "APPEND answer: op 2, id 11, 200, head 1")
    ok(resp[27] == v["receipt.wire"], "APPEND answer carries the receipt at key 27")
    ok(resp[28] == v["server.meta"] and resp[16] == create[16], "APPEND answer carries the server metadata (28) and AdCert (16)")
    print("check_trust: %d checks passed" % checks)


if __name__ == "__main__":
    main()
