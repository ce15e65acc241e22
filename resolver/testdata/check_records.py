#!/usr/bin/env python3
"""Independent generator and checker for the resolver's golden files
(location.hex, self.hex, tombstone.hex, border.hex, set.hex, proof.hex;
docs/PROTOCOL.md §6). It uses only the Python standard library: its own
deterministic CBOR encoder and strict decoder, its own COSE_Sign1
certificates and Sig_structure (§3.3), its own chains (§3.4), and a
pure-Python Ed25519 (RFC 8032) for signing and verifying. It rebuilds every
vector from the fixture's seeds and labels — nothing read from the Go code
— compares it byte for byte with the file, then decodes the file strictly
and checks it field by field (keys, kinds, names, addresses, sequences,
expiries, flags, certificate issuers/subjects/validity, every signature).
Exit status 0 when every check passes; the first failure is printed."""
import hashlib
import sys
from pathlib import Path

HERE = Path(__file__).parent

# ---------------------------------------------------------------- Ed25519
# RFC 8032 §5.1, extended homogeneous coordinates.
P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _recover_x(y, sign):
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if (x & 1) != sign:
        x = P - x
    return x


_BY = 4 * pow(5, P - 2, P) % P
_BX = _recover_x(_BY, 0)
BASE = (_BX, _BY, 1, _BX * _BY % P)


def _add(p, q):
    a = (p[1] - p[0]) * (q[1] - q[0]) % P
    b = (p[1] + p[0]) * (q[1] + q[0]) % P
    c = 2 * p[3] * q[3] * D % P
    d = 2 * p[2] * q[2] % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _mul(s, p):
    q = (0, 1, 1, 0)
    while s:
        if s & 1:
            q = _add(q, p)
        p = _add(p, p)
        s >>= 1
    return q


def _encode_point(p):
    zi = pow(p[2], P - 2, P)
    x, y = p[0] * zi % P, p[1] * zi % P
    return (y | (x & 1) << 255).to_bytes(32, "little")


def _decode_point(b):
    y = int.from_bytes(b, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    x = _recover_x(y, sign)
    if x is None:
        raise ValueError("bad point")
    return (x, y, 1, x * y % P)


def _equal(p, q):
    return (p[0] * q[2] - q[0] * p[2]) % P == 0 and (p[1] * q[2] - q[1] * p[2]) % P == 0


def _h(*parts):
    return int.from_bytes(hashlib.sha512(b"".join(parts)).digest(), "little")


class Key:
    """An Ed25519 key from its 32-byte seed."""

    def __init__(self, seed):
        h = hashlib.sha512(seed).digest()
        a = int.from_bytes(h[:32], "little")
        a &= (1 << 254) - 8
        a |= 1 << 254
        self.a, self.prefix = a, h[32:]
        self.pub = _encode_point(_mul(a, BASE))

    def sign(self, msg):
        r = _h(self.prefix, msg) % L
        rb = _encode_point(_mul(r, BASE))
        s = (r + _h(rb, self.pub, msg) * self.a) % L
        return rb + s.to_bytes(32, "little")


def verify(pub, msg, sig):
    if len(sig) != 64:
        return False
    s = int.from_bytes(sig[32:], "little")
    if s >= L:
        return False
    a, r = _decode_point(pub), _decode_point(sig[:32])
    k = _h(sig[:32], pub, msg) % L
    return _equal(_mul(s, BASE), _add(r, _mul(k, a)))


# ------------------------------------------------------------------- CBOR
def head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for ai, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | ai]) + n.to_bytes(size, "big")
    raise ValueError("too large")


def enc(v):
    """Deterministic CBOR of ints (≥ 0), bytes, str, lists and dicts with
    int keys (ascending, which is bytewise order of small-int encodings)."""
    if isinstance(v, bool):
        raise TypeError("bool")
    if isinstance(v, int):
        assert v >= 0
        return head(0, v)
    if isinstance(v, bytes):
        return head(2, len(v)) + v
    if isinstance(v, str):
        b = v.encode()
        return head(3, len(b)) + b
    if isinstance(v, list):
        return head(4, len(v)) + b"".join(enc(x) for x in v)
    if isinstance(v, dict):
        return head(5, len(v)) + b"".join(enc(k) + enc(v[k]) for k in sorted(v))
    raise TypeError(type(v))


def decode(b, i=0):
    """One CBOR item at b[i:] -> (value, next offset); refuses indefinite
    lengths, non-shortest heads and unordered or duplicate map keys. A tag
    comes back as ('tag', n, value)."""
    ib = b[i]
    major, ai = ib >> 5, ib & 0x1F
    i += 1
    if ai < 24:
        arg = ai
    elif ai in (24, 25, 26, 27):
        n = 1 << (ai - 24)
        arg = int.from_bytes(b[i:i + n], "big")
        if arg < (24 if n == 1 else 1 << (4 * n)):
            raise ValueError("non-shortest head at %d" % (i - 1))
        i += n
    else:
        raise ValueError("indefinite length or reserved head at %d" % (i - 1))
    if major == 0:
        return arg, i
    if major == 1:
        return -1 - arg, i
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
            kb = bytes(b[start:i])
            if last is not None and not (len(last), last) < (len(kb), kb):
                raise ValueError("map keys unordered or repeated")
            last = kb
            out[k], i = decode(b, i)
        return out, i
    if major == 6:
        v, i = decode(b, i)
        return ("tag", arg, v), i
    raise ValueError("major type %d" % major)


def whole(b):
    v, n = decode(b)
    if n != len(b):
        raise ValueError("trailing bytes")
    return v


# ----------------------------------------------------- the test fixture
BASE_TIME = 1767323045  # 2026-01-02T03:04:05Z, NotBefore of every certificate
HOUR = 3600
KIND = {"capsule": 1, "router": 2, "server": 3, "domain": 6, "resolver": 7}
CERT = {"adcert": 1, "rtcert": 2, "member": 3}


def key(label):
    return Key(hashlib.sha256(b"gdpnet resolver test key: " + label.encode()).digest())


def name(meta):
    return hashlib.sha256(meta).digest()


def metadata(kind, label, k, writer=None, description=None):
    """A principal's metadata (§2.1): the fixture's nonce is the label's
    first 16 bytes, zero-padded; created is the base time."""
    m = {1: KIND[kind], 2: k.pub, 4: BASE_TIME, 5: label.encode()[:16].ljust(16, b"\0"),
         6: label if description is None else description}
    if writer is not None:
        m[3] = writer.pub
    return enc(m)


def cert(kind, signer, issuer, subject, nb, na):
    """A COSE_Sign1 certificate (§3.2, §3.3)."""
    payload = enc({1: CERT[kind], 2: issuer, 3: subject, 4: nb, 5: na})
    protected = bytes.fromhex("a10127")
    aad = ("gdpnet v1 " + kind).encode()
    sig = signer.sign(enc(["Signature1", protected, aad, payload]))
    return bytes([0xD2]) + head(4, 4) + enc(protected) + bytes([0xA0]) + enc(payload) + enc(sig)


class Node:
    def __init__(self, kind, label, domain=None, valid=24 * HOUR):
        self.key = key(label)
        self.meta = metadata(kind, label, self.key)
        self.name = name(self.meta)
        if domain is not None:
            self.member = cert("member", domain.key, domain.name, self.name, BASE_TIME, BASE_TIME + valid)


def chain(target, router, domain, rtcert, adcert=None, endpoint=None):
    c = {1: target, 4: rtcert, 5: router.meta, 6: router.member, 7: domain.meta}
    if adcert is not None:
        c[2], c[3] = adcert, endpoint
    return enc(c)


def record(signer, kind, nm, chain_bytes, seq, expiry, addrs=None, withdrawn=False, border=None):
    m = {1: kind, 2: nm, 4: chain_bytes, 5: seq, 6: expiry}
    if addrs:
        m[3] = addrs
    if withdrawn:
        m[7] = 1
    if border is not None:
        m[8], m[9] = border.meta, border.member
    m[10] = signer.sign(b"gdpnet location record v1\0" + enc(m))
    return enc(m)


def build():
    dom = Node("domain", "domain golden")
    rtr = Node("router", "router golden", dom)
    rtr2 = Node("router", "router golden 2", dom)
    brd = Node("router", "border golden", dom)
    owner, writer = key("owner golden"), key("writer golden")
    cap = metadata("capsule", "golden", owner, writer=writer, description="capsule golden")
    capn = name(cap)
    srv = Node("server", "server golden")
    ad = cert("adcert", owner, capn, srv.name, BASE_TIME, BASE_TIME + 12 * HOUR)

    def capsule_chain(r):
        rt = cert("rtcert", srv.key, srv.name, r.name, BASE_TIME, BASE_TIME + 12 * HOUR)
        return chain(cap, r, dom, rt, ad, srv.meta)

    ch = capsule_chain(rtr)
    exp = BASE_TIME + 12 * HOUR  # the earliest NotAfter in the chain
    out = {}
    out["location"] = record(rtr.key, 1, capn, ch, 7, exp, ["127.0.0.1:4433", "[::1]:4433"])
    selfsrv = Node("server", "server golden self")
    selfrt = cert("rtcert", selfsrv.key, selfsrv.name, rtr.name, BASE_TIME, BASE_TIME + 24 * HOUR)
    out["self"] = record(rtr.key, 1, selfsrv.name, chain(selfsrv.meta, rtr, dom, selfrt), 1,
                         BASE_TIME + 24 * HOUR, ["127.0.0.1:4433"])
    out["tombstone"] = record(rtr.key, 1, capn, ch, 8, exp, withdrawn=True)
    out["border"] = record(brd.key, 2, capn, ch, 9, exp, ["127.0.0.1:5533"], border=brd)
    second = record(rtr2.key, 1, capn, capsule_chain(rtr2), 7, exp, ["127.0.0.1:4434"])
    entries = sorted([(rtr.name, out["location"]), (rtr2.name, second)])
    out["set"] = enc([e for _, e in entries])
    res = Node("resolver", "resolver golden", dom)
    out["proof"] = enc({1: res.meta, 2: res.member, 3: dom.meta})
    fx = dict(dom=dom, rtr=rtr, rtr2=rtr2, brd=brd, owner=owner, writer=writer, capn=capn,
              srv=srv, selfsrv=selfsrv, res=res, exp=exp)
    return out, fx


# ------------------------------------------------ field-by-field checks
class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def check_cert(b, kind, signer_pub, issuer, subject, nb, na, where):
    t = whole(b)
    check(isinstance(t, tuple) and t[1] == 18, where + ": not a COSE_Sign1 (tag 18)")
    prot, unprot, payload, sig = t[2]
    check(prot == bytes.fromhex("a10127") and unprot == {}, where + ": protected/unprotected header")
    p = whole(payload)
    check(sorted(p) == [1, 2, 3, 4, 5], where + ": payload keys")
    check(p[1] == CERT[kind], where + ": certificate kind")
    check(p[2] == issuer, where + ": issuer")
    check(p[3] == subject, where + ": subject")
    check(p[4] == nb and p[5] == na, where + ": validity %d..%d, want %d..%d" % (p[4], p[5], nb, na))
    sig_structure = enc(["Signature1", prot, ("gdpnet v1 " + kind).encode(), payload])
    check(verify(signer_pub, sig_structure, sig), where + ": signature")
    return p[5]


def check_meta(b, kind, pub, where):
    m = whole(b)
    check(enc(m) == b, where + ": metadata not canonical")
    check(m[1] == KIND[kind], where + ": metadata kind %d, want %d" % (m[1], KIND[kind]))
    check(m[2] == pub, where + ": metadata key")
    return m


def check_record(label, b, fx, want):
    m = whole(b)
    check(enc(m) == b, label + ": not canonical CBOR")
    check(sorted(m) == want["keys"], label + ": keys %s, want %s" % (sorted(m), want["keys"]))
    check(m[1] == want["kind"], label + ": kind")
    check(m[2] == want["name"], label + ": name")
    check(m.get(3) == want.get("addrs"), label + ": addrs %r" % m.get(3))
    check(m[5] == want["seq"], label + ": sequence %d, want %d" % (m[5], want["seq"]))
    check(m.get(7, 0) == (1 if want.get("withdrawn") else 0), label + ": flags")
    c = whole(m[4])
    check(enc(c) == m[4], label + ": chain not canonical")
    r = want["router"]
    check_meta(c[5], "router", r.key.pub, label + " chain router")
    check_meta(c[7], "domain", fx["dom"].key.pub, label + " chain domain")
    nas = [check_cert(c[6], "member", fx["dom"].key.pub, fx["dom"].name, r.name, BASE_TIME, BASE_TIME + 24 * HOUR,
                      label + " chain member")]
    if 2 in c:
        tm = check_meta(c[1], "capsule", fx["owner"].pub, label + " chain target")
        check(tm[3] == fx["writer"].pub, label + ": capsule writer key")
        check(name(c[1]) == m[2], label + ": name is not SHA-256 of the target metadata")
        check_meta(c[3], "server", fx["srv"].key.pub, label + " chain endpoint")
        nas.append(check_cert(c[2], "adcert", fx["owner"].pub, m[2], name(c[3]), BASE_TIME, BASE_TIME + 12 * HOUR,
                              label + " chain adcert"))
        ep = fx["srv"]
        rt_na = BASE_TIME + 12 * HOUR
    else:
        check(sorted(c) == [1, 4, 5, 6, 7], label + ": self chain keys")
        ep = fx["selfsrv"]
        check_meta(c[1], "server", ep.key.pub, label + " chain target")
        check(name(c[1]) == m[2], label + ": name is not SHA-256 of the target metadata")
        rt_na = BASE_TIME + 24 * HOUR
    nas.append(check_cert(c[4], "rtcert", ep.key.pub, ep.name, r.name, BASE_TIME, rt_na, label + " chain rtcert"))
    signer = r
    if m[1] == 2:
        brd = fx["brd"]
        check_meta(m[8], "router", brd.key.pub, label + " border")
        nas.append(check_cert(m[9], "member", fx["dom"].key.pub, fx["dom"].name, name(m[8]), BASE_TIME,
                              BASE_TIME + 24 * HOUR, label + " border member"))
        signer = brd
    check(m[6] == min(nas), label + ": expiry %d, want the earliest NotAfter %d" % (m[6], min(nas)))
    unsigned = {k: v for k, v in m.items() if k != 10}
    check(verify(signer.key.pub, b"gdpnet location record v1\0" + enc(unsigned), m[10]), label + ": signature")


def main():
    gen, fx = build()
    files = {}
    for label in ("location", "self", "tombstone", "border", "set", "proof"):
        files[label] = bytes.fromhex((HERE / (label + ".hex")).read_text().strip())
    try:
        capn = fx["capn"]
        check_record("location", files["location"], fx, dict(
            keys=[1, 2, 3, 4, 5, 6, 10], kind=1, name=capn, addrs=["127.0.0.1:4433", "[::1]:4433"], seq=7,
            router=fx["rtr"]))
        check_record("self", files["self"], fx, dict(
            keys=[1, 2, 3, 4, 5, 6, 10], kind=1, name=fx["selfsrv"].name, addrs=["127.0.0.1:4433"], seq=1,
            router=fx["rtr"]))
        check_record("tombstone", files["tombstone"], fx, dict(
            keys=[1, 2, 4, 5, 6, 7, 10], kind=1, name=capn, seq=8, withdrawn=True, router=fx["rtr"]))
        check_record("border", files["border"], fx, dict(
            keys=[1, 2, 3, 4, 5, 6, 8, 9, 10], kind=2, name=capn, addrs=["127.0.0.1:5533"], seq=9,
            router=fx["rtr"]))
        s = whole(files["set"])
        check(enc(s) == files["set"] and isinstance(s, list) and len(s) == 2, "set: not a canonical array of 2")
        routers = [name(whole(whole(e)[4])[5]) for e in s]
        check(routers[0] < routers[1], "set: entries not sorted by router name")
        byname = dict(zip(routers, s))
        check(byname.get(fx["rtr"].name) == files["location"], "set: the router golden entry is not location.hex")
        check_record("set entry 2", byname.get(fx["rtr2"].name, b"\xa0"), fx, dict(
            keys=[1, 2, 3, 4, 5, 6, 10], kind=1, name=capn, addrs=["127.0.0.1:4434"], seq=7, router=fx["rtr2"]))
        p = whole(files["proof"])
        check(sorted(p) == [1, 2, 3] and enc(p) == files["proof"], "proof: keys or encoding")
        check_meta(p[1], "resolver", fx["res"].key.pub, "proof node")
        check_meta(p[3], "domain", fx["dom"].key.pub, "proof domain")
        check_cert(p[2], "member", fx["dom"].key.pub, fx["dom"].name, name(p[1]), BASE_TIME, BASE_TIME + 24 * HOUR,
                   "proof member")
        for label, want in gen.items():
            got = files[label]
            if got != want:
                at = next((i for i, (x, y) in enumerate(zip(got, want)) if x != y), min(len(got), len(want)))
                raise Fail("%s.hex differs from the independently built vector at byte %d (%d vs %d bytes)"
                           % (label, at, len(got), len(want)))
    except (Fail, ValueError, KeyError, TypeError, IndexError) as e:
        print("FAIL:", e)
        return 1
    print("ok: %s rebuilt byte for byte and checked field by field"
          % ", ".join(l + ".hex" for l in gen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
