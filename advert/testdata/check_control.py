#!/usr/bin/env python3
"""Checks control_vectors.txt against docs/PROTOCOL.md §5, independently of
the Go code (standard library only): each payload is decoded with the
strict deterministic-CBOR decoder of
../../internal/pyvectors/gdpvec.py, checked against the key tables of
§5.2–5.4 as written here from the document (types, required keys, keys 2
and 3 of an advertised name together or not at all), the status names are
read from the §5.4 table, and the decoded fields are compared with the
messages §5.7 describes. Exit status 0 when every vector matches."""
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOC = HERE.parents[1] / "docs" / "PROTOCOL.md"

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(HERE.parents[1] / "internal" / "pyvectors"))
from gdpvec import Bad, decode, encode  # noqa: E402


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
             4: ("names", array_of(lambda x: isinstance(x, dict), 1, 128), True),
             5: ("wait", lambda v: uint(v) and 0 < v <= 120_000, False)}
WITHDRAW = {1: ("seq", uint, True), 2: ("names", array_of(name32, 1, 128), True)}
RESULT_NAME = {1: ("name", name32, True), 2: ("status", uint, True), 3: ("expiry", uint, False),
               4: ("detail", lambda v: isinstance(v, str) and len(v.encode()) <= 256, False),
               5: ("published", lambda v: uint(v) and 1 <= v <= 3, False)}
RESULT = {1: ("seq", uint, True), 2: ("names", lambda v: isinstance(v, list), True)}


def parse(kind, b):
    m = decode(b)
    if kind in ("advertise", "advertise_wait"):
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
    elif kind in ("result", "result_published"):
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
    pub = {m.group(2): int(m.group(1)) for m in re.finditer(r"^\| +(\d+) \| `([a-z_]+)` \|", sec[sec.index("published |"):], re.M)}
    if pub.get("published") != 1:
        print("could not read the published table of docs/PROTOCOL.md §5.4: %r" % pub)
        return 1
    n11, n22 = b"\x11" * 32, b"\x22" * 32
    seq = 1_800_000_000_000_000_000
    want = {
        "advertise": {"seq": seq, "endpoint": bytes.fromhex("e0e1"), "rtcert": bytes.fromhex("c0c1c2"),
                      "names": [{"name": n11}, {"name": n22, "target": b"\xa0", "adcert": b"\xad"}]},
        "withdraw": {"seq": seq + 1, "names": [n22]},
        "result": {"seq": seq, "names": [{"name": n11, "status": status["accepted"], "expiry": 1_800_003_600},
                                         {"name": n22, "status": status["bad_signature"], "detail": "adcert"}]},
        "advertise_wait": {"seq": seq + 2, "endpoint": bytes.fromhex("e0e1"), "rtcert": bytes.fromhex("c0c1c2"),
                           "names": [{"name": n22, "target": b"\xa0", "adcert": b"\xad"}], "wait": 10_000},
        "result_published": {"seq": seq + 2, "names": [{"name": n22, "status": status["accepted"],
                                                        "expiry": 1_800_003_600, "published": pub["published"]}]},
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
