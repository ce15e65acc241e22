#!/usr/bin/env python3
"""Checks control_vectors.txt against docs/PROTOCOL.md §5, independently of
the Go code (standard library only): each payload is decoded with the
strict deterministic-CBOR decoder below, checked against the key tables of
§5.2–5.4 as written here from the document (types, required keys, keys 2
and 3 of an advertised name together or not at all), the status names are
read from the §5.4 table, and the decoded fields are compared with the
messages §5.7 describes. Exit status 0 when every vector matches."""
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOC = HERE.parents[1] / "docs" / "PROTOCOL.md"


class Bad(Exception):
    pass


def decode(b, tags=False):
    """Decodes one deterministic CBOR item that fills b."""
    v, i = _item(b, 0, tags, 0)
    if i != len(b):
        raise Bad("%d trailing bytes" % (len(b) - i))
    return v


def _arg(b, i):
    if i >= len(b):
        raise Bad("truncated")
    ib = b[i]
    major, info = ib >> 5, ib & 31
    i += 1
    if info < 24:
        return major, info, i
    n = {24: 1, 25: 2, 26: 4, 27: 8}.get(info)
    if n is None:
        raise Bad("indefinite length or reserved info %d" % info)
    if i + n > len(b):
        raise Bad("truncated")
    v = int.from_bytes(b[i:i + n], "big")
    if v < (24 if n == 1 else 1 << (8 * n // 2)):
        raise Bad("integer not in its shortest form")
    return major, v, i + n


def _item(b, i, tags, depth):
    if depth > 16:
        raise Bad("too deep")
    start = i
    major, v, i = _arg(b, i)
    if major == 0:
        return v, i
    if major == 1:
        return -1 - v, i
    if major in (2, 3):
        if i + v > len(b):
            raise Bad("truncated string")
        s = b[i:i + v]
        return (s if major == 2 else s.decode("utf-8")), i + v
    if major == 4:
        out = []
        for _ in range(v):
            x, i = _item(b, i, tags, depth + 1)
            out.append(x)
        return out, i
    if major == 5:
        out, prev = {}, None
        for _ in range(v):
            ks = i
            k, i = _item(b, i, tags, depth + 1)
            kb = b[ks:i]
            if prev is not None and kb <= prev:
                raise Bad("map keys not in deterministic order or duplicated")
            prev = kb
            out[k], i = _item(b, i, tags, depth + 1)
        return out, i
    if major == 6:
        if not tags:
            raise Bad("tag %d at offset %d" % (v, start))
        x, i = _item(b, i, tags, depth + 1)
        return ("tag", v, x), i
    if v == 20:
        return False, i
    if v == 21:
        return True, i
    raise Bad("simple value or float %d" % v)


def encode(v):
    """Deterministic CBOR encoder for the few types used here."""
    def head(major, n):
        if n < 24:
            return bytes([major << 5 | n])
        for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
            if n < 1 << (8 * size):
                return bytes([major << 5 | info]) + n.to_bytes(size, "big")
        raise Bad("integer too large")
    if isinstance(v, bool):
        return b"\xf5" if v else b"\xf4"
    if isinstance(v, int):
        return head(0, v) if v >= 0 else head(1, -1 - v)
    if isinstance(v, bytes):
        return head(2, len(v)) + v
    if isinstance(v, str):
        return head(3, len(v.encode())) + v.encode()
    if isinstance(v, list):
        return head(4, len(v)) + b"".join(encode(x) for x in v)
    if isinstance(v, dict):
        items = sorted((encode(k), encode(x)) for k, x in v.items())
        return head(5, len(items)) + b"".join(k + x for k, x in items)
    raise Bad("cannot encode %r" % (v,))



def uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def name32(v):
    return isinstance(v, bytes) and len(v) == 32


def check_map(m, schema, what):
    """schema: key -> (field, predicate, required)."""
    if not isinstance(m, dict):
        raise Bad("%s is not a map" % what)
    out = {}
    for k, v in m.items():
        if k not in schema:
            raise Bad("%s: unknown key %r" % (what, k))
        field, pred, _ = schema[k]
        if not pred(v):
            raise Bad("%s: field %s has the wrong type: %r" % (what, field, v))
        out[field] = v
    for k, (field, _, required) in schema.items():
        if required and k not in m:
            raise Bad("%s: required field %s missing" % (what, field))
    return out


def bstr(most):
    return lambda v: isinstance(v, bytes) and len(v) <= most


def array_of(pred, lo, hi):
    return lambda v: isinstance(v, list) and lo <= len(v) <= hi and all(pred(x) for x in v)


ADV_NAME = {1: ("name", name32, True), 2: ("target", bstr(4096), False), 3: ("adcert", bstr(4096), False)}
ADVERTISE = {1: ("seq", uint, True), 2: ("endpoint", bstr(4096), True), 3: ("rtcert", bstr(4096), True),
             4: ("names", array_of(lambda x: isinstance(x, dict), 1, 128), True)}
WITHDRAW = {1: ("seq", uint, True), 2: ("names", array_of(name32, 1, 128), True)}
RESULT_NAME = {1: ("name", name32, True), 2: ("status", uint, True), 3: ("expiry", uint, False),
               4: ("detail", lambda v: isinstance(v, str) and len(v.encode()) <= 256, False)}
RESULT = {1: ("seq", uint, True), 2: ("names", lambda v: isinstance(v, list), True)}


def parse(kind, b):
    m = decode(b)
    if kind == "advertise":
        out = check_map(m, ADVERTISE, kind)
        names = []
        for i, n in enumerate(out["names"]):
            e = check_map(n, ADV_NAME, "name %d" % i)
            if ("target" in e) != ("adcert" in e):
                raise Bad("name %d: target and adcert must come together" % i)
            names.append(e)
        out["names"] = names
    elif kind == "withdraw":
        out = check_map(m, WITHDRAW, kind)
    elif kind == "result":
        out = check_map(m, RESULT, kind)
        out["names"] = [check_map(n, RESULT_NAME, "result %d" % i) for i, n in enumerate(out["names"])]
    else:
        raise Bad("unknown kind")
    if encode(m) != b:
        raise Bad("does not re-encode to the same bytes")
    return out


def main():
    doc = DOC.read_text()
    sec = doc[doc.index("### 5.4 ADVERTISE_RESULT"):doc.index("### 5.5")]
    status = {m.group(2): int(m.group(1)) for m in re.finditer(r"^\| +(\d+) \| `([a-z_]+)` \|", sec, re.M)}
    if status.get("bad_signature") != 2 or status.get("accepted") != 0:
        print("could not read the status table of docs/PROTOCOL.md §5.4: %r" % status)
        return 1
    n11, n22 = b"\x11" * 32, b"\x22" * 32
    seq = 1_800_000_000_000_000_000
    want = {
        "advertise": {"seq": seq, "endpoint": bytes.fromhex("e0e1"), "rtcert": bytes.fromhex("c0c1c2"),
                      "names": [{"name": n11}, {"name": n22, "target": b"\xa0", "adcert": b"\xad"}]},
        "withdraw": {"seq": seq + 1, "names": [n22]},
        "result": {"seq": seq, "names": [{"name": n11, "status": status["accepted"], "expiry": 1_800_003_600},
                                         {"name": n22, "status": status["bad_signature"], "detail": "adcert"}]},
    }
    bad, seen = 0, set()
    for line in (HERE / "control_vectors.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        kind, hx = line.split(" ", 1)
        seen.add(kind)
        try:
            got = parse(kind, bytes.fromhex(hx.strip()))
            if got != want.get(kind):
                raise Bad("decodes to %r\n     want %r" % (got, want.get(kind)))
            print("ok   " + kind)
        except (Bad, ValueError, KeyError) as e:
            print("BAD  %s: %s" % (kind, e))
            bad += 1
    for kind in sorted(set(want) - seen):
        print("BAD  %s: described in §5.7 but not in control_vectors.txt" % kind)
        bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
