#!/usr/bin/env python3
"""Checks vectors.txt against docs/PROTOCOL.md §7 and §8, independently of
the Go code (standard library only). The field table (§8.1), the operation
numbers (§8.2) and the status codes (§8.4) are read from the document
itself; each vector is decoded with the strict CBOR decoder of
../../../internal/pyvectors/gdpvec.py (definite
lengths, no tags in the envelope, shortest integer forms, keys in
deterministic order), every field is checked against its documented type,
and the decoded fields are compared with the messages §8.6 describes. The
records and heartbeats inside are decoded too (§7.1, §7.3): the record's
data hash is SHA-256 of its data, the heartbeat's root is the RFC 9162
Merkle tree hash over the record's entry hash. The SYNC possession tags
(§8.3, the one-entry and the sampled one) are recomputed from the record
and the nonce, and the seqno and samples a nonce picks from the worked
figures of §8.6. Signatures are not verified
here (capsule/testdata has the Python checks that do). Exit status 0 when
every vector matches."""
import hashlib
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOC = HERE.parents[2] / "docs" / "PROTOCOL.md"

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(HERE.parents[2] / "internal" / "pyvectors"))
from gdpvec import Bad, decode, encode  # noqa: E402


# ---- the document's tables ----

def section(doc, title):
    i = doc.index(title)
    j = doc.find("\n### ", i + 1)
    return doc[i:j]


def field_table(doc):
    """§8.1: key -> (name, type)."""
    fields = {}
    for m in re.finditer(r"^\| ([0-9, ]+) \| ([a-z, ]+) \| ([^|]+) \|", section(doc, "### 8.1 Envelope"), re.M):
        keys = [int(k) for k in m.group(1).split(",")]
        names = [n.strip() for n in m.group(2).split(",")]
        for k, n in zip(keys, names):
            fields[k] = (n, m.group(3).strip())
    return fields


def number_table(doc, title):
    out = {}
    for m in re.finditer(r"^\| +(\d+) \| ([A-Za-z_ ]+?) *[|:]", section(doc, title), re.M):
        out[m.group(2).strip()] = int(m.group(1))
    return out


def check_type(name, typ, v):
    def names(xs, most):
        return isinstance(xs, list) and len(xs) <= most and all(isinstance(x, bytes) and len(x) == 32 for x in xs)
    ok = {
        "uint": lambda: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
        "bstr": lambda: isinstance(v, bytes),
        "bstr 32": lambda: isinstance(v, bytes) and len(v) == 32,
        "bool": lambda: isinstance(v, bool),
    }
    if typ in ok:
        good = ok[typ]()
    elif typ.startswith("tstr"):
        good = isinstance(v, str) and len(v.encode()) <= 1024
    elif typ.startswith("[bstr 32]"):
        good = names(v, int(typ.split("≤")[1]))
    elif typ.startswith("[bstr]"):
        good = isinstance(v, list) and all(isinstance(x, bytes) for x in v)
    elif typ.startswith("[{1: [bstr], 2: bstr}]"):
        good = isinstance(v, list) and all(isinstance(s, dict) and set(s) <= {1, 2} and isinstance(s.get(2), bytes)
                                           and all(isinstance(r, bytes) for r in s.get(1, [])) for s in v)
    else:
        raise Bad("field %s: type %r not understood by this checker" % (name, typ))
    if not good:
        raise Bad("field %s is not a %s: %r" % (name, typ, v))


# ---- §7 objects inside ----

def sha(b):
    return hashlib.sha256(b).digest()


def check_record(rec, capsule, seqno, time, prev, data):
    r = decode(rec)
    want = {1: capsule, 2: seqno, 3: time, 4: prev, 5: sha(data), 6: data}
    if r != want:
        raise Bad("record decodes to %r, want %r" % (r, want))
    # the entry hash is SHA-256 of the 5-entry header: the record without key 6
    hdr = dict(r)
    del hdr[6]
    return sha(encode(hdr))


def check_heartbeat(hb, capsule, seqno, root, time):
    t = decode(hb, tags=True)
    if not (isinstance(t, tuple) and t[1] == 18 and isinstance(t[2], list) and len(t[2]) == 4):
        raise Bad("heartbeat is not a tagged COSE_Sign1: %r" % (t,))
    protected, unprotected, payload, sig = t[2]
    if protected != bytes.fromhex("a10127") or unprotected != {} or len(sig) != 64:
        raise Bad("heartbeat envelope %r %r, %d-byte signature" % (protected, unprotected, len(sig)))
    body = decode(payload)
    want = {1: capsule, 2: seqno, 3: root, 4: time}
    if body != want:
        raise Bad("heartbeat body %r, want %r" % (body, want))


def check_proof(p, index, size, path):
    got = decode(p)
    if got != {1: index, 2: size, 3: path}:
        raise Bad("inclusion proof %r" % (got,))


# ---- §8.3 proof of possession ----

def possession_seqno(capsule, nonce, head):
    """1 + (first 8 bytes of SHA-256(context, capsule, nonce, head)) mod head."""
    h = sha(b"gdp sync possession seqno v1\x00" + capsule + nonce + head.to_bytes(8, "big"))
    return 1 + int.from_bytes(h[:8], "big") % head


def possession_tag(capsule, server, nonce, head, head_entry, entry):
    return sha(b"gdp sync possession v1\x00" + capsule + server + nonce + head.to_bytes(8, "big") + head_entry + entry)


def possession_samples(capsule, nonce, head, s):
    """The sampled tag's entries (§8.3, Floyd's algorithm): for j from
    head - n + 1 to head, n = min(s, head), t = 1 + (first 8 bytes of
    SHA-256(context, capsule, nonce, head, j)) mod j, or j when t is taken;
    ascending."""
    n = min(s, head)
    taken = []
    for j in range(head - n + 1, head + 1):
        h = sha(b"gdp sync possession samples v2\x00" + capsule + nonce + head.to_bytes(8, "big") + j.to_bytes(8, "big"))
        t = 1 + int.from_bytes(h[:8], "big") % j
        taken.append(j if t in taken else t)
    return sorted(taken)


def possession_sampled_tag(capsule, server, nonce, head, s, head_entry, entries):
    return sha(b"gdp sync possession v2\x00" + capsule + server + nonce + head.to_bytes(8, "big") + s.to_bytes(8, "big")
               + head_entry + b"".join(entries))


def main():
    doc = DOC.read_text()
    fields = field_table(doc)
    ops = number_table(doc, "### 8.2 Operations")
    status = number_table(doc, "### 8.4 Status codes")
    if len(fields) < 25 or ops.get("SYNC") != 9 or status.get("ok") != 200:
        print("could not read the tables of docs/PROTOCOL.md §8: %d fields, ops %r" % (len(fields), ops))
        return 1

    C = bytes(range(32))
    NONCE = bytes(range(0x40, 0x60))
    S = b"\xaa" + bytes(31)
    T = 1_700_000_000_000_000_000
    op = lambda n: ops[n]
    # The messages §8.6 describes, field by field ("record" and "heartbeat"
    # stand for the one-record batch "hello" checked separately).
    batch = {"records": ["record"], "heartbeat": "heartbeat"}
    page = dict(batch, **{"from": 1, "to": 1, "proof": "proof", "head": 1})
    want = {
        "create": {"op": op("CREATE"), "id": 1, "capsule": C, "metadata": b"\xa0", "adcert": b"\xa0", "replicas": [S], "w": 1},
        "create-response": {"op": op("CREATE"), "id": 1, "status": status["created"], "capsule": C, "replicas": [S], "w": 1},
        "append": dict(batch, op=op("APPEND"), id=2, capsule=C),
        "append-response": {"op": op("APPEND"), "id": 2, "status": status["ok"], "capsule": C, "head": 1},
        "append-refused": {"op": op("APPEND"), "id": 3, "status": 409, "capsule": C, "error": "stale heartbeat"},
        "read": {"op": op("READ"), "id": 4, "capsule": C, "from": 1, "to": 1},
        "read-response": dict(page, op=op("READ"), id=4, status=200, capsule=C),
        "subscribe": {"op": op("SUBSCRIBE"), "id": 5, "capsule": C, "from": 1, "lease": 30000},
        "event": dict(page, op=op("EVENT"), id=5, capsule=C),
        "metadata": {"op": op("METADATA"), "id": 6, "capsule": C},
        "proof": {"op": op("PROOF"), "id": 7, "capsule": C, "from": 1, "size": 1},
        "sync": {"op": op("SYNC"), "id": 8, "capsule": C, "from": 1},
        "sync-response": {"op": op("SYNC"), "id": 8, "status": 200, "capsule": C, "from": 1, "to": 1, "head": 1,
                          "heartbeat": "heartbeat", "segments": [{1: ["record"], 2: "heartbeat"}]},
        # a range SYNC (§8.5) of entries 2..5, and the answer of a replica
        # whose head is 1: nothing, starting at 2 (to = from - 1), with the
        # writer's heartbeat of that head (its proof, §8.5)
        "sync-range": {"op": op("SYNC"), "id": 12, "capsule": C, "from": 2, "to": 5},
        "sync-range-response": {"op": op("SYNC"), "id": 12, "status": 200, "capsule": C, "from": 2, "to": 1, "head": 1,
                                "heartbeat": "heartbeat"},
        # a SYNC with its possession nonce (key 11: bytes 0x40..0x5f), and
        # the answer of server aa 00.. whose head is 1: the possession tag
        # (key 30) over entry 1 twice (the head, and the entry the nonce
        # picks: with head 1 always 1), filled in below from the record
        "sync-possession": {"op": op("SYNC"), "id": 13, "capsule": C, "from": 2, "hash": NONCE},
        "sync-possession-response": {"op": op("SYNC"), "id": 13, "status": 200, "capsule": C, "from": 2, "to": 1,
                                     "head": 1, "heartbeat": "heartbeat", "possession": None},
        # the same with 16 samples stated (key 24, limit) both ways: the
        # sampled tag over entry 1 (the head) and entry 1 (the one sample
        # a log of 1 allows), filled in below
        "sync-possession-sampled": {"op": op("SYNC"), "id": 14, "capsule": C, "from": 2, "hash": NONCE, "limit": 16},
        "sync-possession-sampled-response": {"op": op("SYNC"), "id": 14, "status": 200, "capsule": C, "from": 2, "to": 1,
                                             "head": 1, "heartbeat": "heartbeat", "limit": 16, "possession": None},
        "unknown-capsule": {"op": op("READ"), "id": 9, "status": status["not found"], "capsule": C, "error": "unknown capsule"},
        "append-writer-conflict": {"op": op("APPEND"), "id": 10, "status": status["another writer is active"], "capsule": C,
                                   "head": 1, "error": "another writer is active"},
        # the signature (64 bytes, Ed25519 over §8.3's DeleteSigned bytes) is
        # checked by the Go tests; here its place and size
        "delete": {"op": op("DELETE"), "id": 11, "capsule": C, "time": T, "signature": "signature"},
        "delete-response": {"op": op("DELETE"), "id": 11, "status": status["ok"], "capsule": C},
    }
    # The signed vectors of §8.7 are checked field by field and signature by
    # signature in capsule/testdata/check_trust.py; here only their shape.
    # create-requester (Session 14) is create-signed with the requester's
    # proof at key 13: checked below to be a map of the credentials (§4.2,
    # version byte 1, three length-prefixed parts) and nothing else.
    # read-requester (Session 15) is the read vector with the same proof.
    shape_only = {"create-signed", "append-receipt", "create-requester", "read-requester"}

    # The possession derivation against the worked figure of §8.6: with
    # this nonce a replica whose head is 1,000 covers entry 1,000 and the
    # entry the document names.
    m = re.search(r"head is 1,000 covers entries 1,000 and ([0-9,]+)", doc)
    k = possession_seqno(C, NONCE, 1000)
    if not m or int(m.group(1).replace(",", "")) != k:
        print("BAD  possession seqno: §8.6 says %r, computed %d" % (m and m.group(1), k))
        return 1
    print("ok   possession seqno (head 1,000: entry %d)" % k)
    m = re.search(r"head is 1,000 and 16 samples covers entry 1,000 and entries ([0-9, and]+?)\.", re.sub(r"\s+", " ", doc))
    ks = possession_samples(C, NONCE, 1000, 16)
    if not m or [int(x) for x in m.group(1).replace(" and ", ", ").split(", ")] != ks:
        print("BAD  possession samples: §8.6 says %r, computed %r" % (m and m.group(1), ks))
        return 1
    if possession_samples(C, NONCE, 5, 16) != [1, 2, 3, 4, 5] or possession_samples(C, NONCE, 1, 16) != [1]:
        print("BAD  possession samples: a log no longer than s is sampled whole")
        return 1
    print("ok   possession samples (head 1,000, 16 samples: %s)" % ks)

    bad = 0
    seen = set()
    raw_record = None  # the "hello" record's wire form, from the APPEND vector
    for line in (HERE / "vectors.txt").read_text().splitlines():
        if line.startswith("append "):
            raw_record = decode(bytes.fromhex(line.split(" ", 1)[1]))[6][0]
    if raw_record is None:
        print("BAD  no append vector to take the record from")
        return 1
    want["sync-possession-response"]["possession"] = possession_tag(C, S, NONCE, 1, raw_record, raw_record)
    want["sync-possession-sampled-response"]["possession"] = possession_sampled_tag(
        C, S, NONCE, 1, 16, raw_record, [raw_record for _ in possession_samples(C, NONCE, 1, 16)])
    for line in (HERE / "vectors.txt").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        name, hx = line.split(" ", 1)
        seen.add(name)
        try:
            raw = bytes.fromhex(hx)
            m = decode(raw)
            if not isinstance(m, dict):
                raise Bad("not a map")
            got = {}
            for k, v in m.items():
                if k not in fields:
                    raise Bad("key %r is not in the §8.1 table" % (k,))
                fname, typ = fields[k]
                check_type(fname, typ, v)
                if typ == "uint" and v == 0 or v in (b"", [], False, ""):
                    raise Bad("zero-valued field %s is encoded (§8.1: absent)" % fname)
                got[fname] = v
            if encode(m) != raw:
                raise Bad("does not re-encode to the same bytes")
            if name in ("create-requester", "read-requester"):
                r = decode(got["proof"])
                if not isinstance(r, dict) or set(r) != {1} or not isinstance(r[1], bytes):
                    raise Bad("key 13 is not a requester proof {1: credentials}")
                c, parts = r[1], []
                if c[0] != 1:
                    raise Bad("credentials version %d, want 1" % c[0])
                c = c[1:]
                for _ in range(3):
                    n = int.from_bytes(c[:2], "big")
                    parts.append(c[2:2 + n])
                    c = c[2 + n:]
                if c or not all(parts):
                    raise Bad("credentials are not three length-prefixed parts")
            if name not in shape_only:
                if name not in want:
                    raise Bad("no expectation for this vector: add one from docs/PROTOCOL.md §8.6")
                # the record, heartbeat and proof inside
                prev = bytes(32)
                recs = got.get("records") or (got["segments"][0][1] if "segments" in got else None)
                hbs = got.get("heartbeat") or (got["segments"][0][2] if "segments" in got else None)
                if recs is not None:
                    entry = check_record(recs[0], C, 1, T, prev, b"hello")
                    root = sha(b"\x00" + entry)  # a tree of one leaf
                    check_heartbeat(hbs, C, 1, root, T)
                if "proof" in got:
                    check_proof(got["proof"], 0, 1, [])
                norm = {}
                for f, v in got.items():
                    if f == "records":
                        v = ["record"] * len(v)
                    elif f in ("heartbeat", "proof"):
                        v = f
                    elif f == "signature":
                        if len(v) != 64:
                            raise Bad("signature of %d bytes" % len(v))
                        v = f
                    elif f == "segments":
                        v = [{1: ["record"] * len(s.get(1, [])), 2: "heartbeat"} for s in v]
                    norm[f] = v
                if norm != want[name]:
                    raise Bad("decodes to %r\n     want %r" % (norm, want[name]))
            print("ok   " + name)
        except (Bad, ValueError, KeyError, IndexError, TypeError) as e:
            print("BAD  %s: %s" % (name, e))
            bad += 1
    for name in sorted(set(want) - seen):
        print("BAD  %s: described here but not in vectors.txt" % name)
        bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
