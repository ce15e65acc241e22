#!/usr/bin/env python3
"""Checks control.json against docs/PROTOCOL.md §4.3, independently of the
Go code (standard library only): decodes each 16-byte control message by
the documented layout (type, arg, reserved 0, index, epoch, port, MTU, all
big-endian), compares the fields with the vector's, checks the type against
the vector's name using the type table read from the document (HELLO,
ACCEPT, …; REFUSE's arg a documented reason), and re-encodes. Exit status
0 when every vector matches."""
import json
import re
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOC = HERE.parents[1] / "docs" / "PROTOCOL.md"


def main():
    doc = DOC.read_text()
    sec = doc[doc.index("### 4.3 Control messages"):doc.index("### 4.4")]
    types = {m.group(2): int(m.group(1)) for m in re.finditer(r"^\| (\d+) \| ([A-Z_]+) \|", sec, re.M)}
    if types.get("HELLO") != 1 or types.get("REKEY_END") != 7:
        print("could not read the type table of docs/PROTOCOL.md §4.3: %r" % types)
        return 1
    # The prose spells out two vectors; both must be in the file.
    quoted = set(re.findall(r"`([0-9a-f]{32})`", sec))
    bad = 0
    seen = set()
    for v in json.loads((HERE / "control.json").read_text()):
        name = v["name"]
        try:
            raw = bytes.fromhex(v["hex"])
            if len(raw) != 16:
                raise ValueError("%d bytes, want 16" % len(raw))
            typ, arg, reserved, index, epoch, port, mtu = struct.unpack(">BBHIIHH", raw)
            if reserved != 0:
                raise ValueError("reserved bytes %04x" % reserved)
            got = {"type": typ, "arg": arg, "index": index, "epoch": epoch, "port": port, "mtu": mtu}
            want = {k: v[k] for k in got}
            if got != want:
                raise ValueError("decodes to %r, the vector says %r" % (got, want))
            # "hello raw" -> HELLO, "rekey ack" -> REKEY_ACK, "refuse no raw" -> REFUSE
            words = name.upper().split()
            tname = "_".join(words[:2]) if "_".join(words[:2]) in types else words[0]
            if types.get(tname) != typ:
                raise ValueError("type %d, but the name says %s (%r)" % (typ, tname, types.get(tname)))
            if tname == "HELLO" and arg != {"QUIC": 1, "RAW": 2}[words[1]]:
                raise ValueError("HELLO arg %d for a %s link" % (arg, words[1].lower()))
            if tname == "REFUSE" and arg not in (1, 2, 3):
                raise ValueError("REFUSE reason %d not documented" % arg)
            if struct.pack(">BBHIIHH", typ, arg, 0, index, epoch, port, mtu) != raw:
                raise ValueError("does not re-encode")
            seen.add(v["hex"])
            print("ok   " + name)
        except (ValueError, KeyError) as e:
            print("BAD  %s: %s" % (name, e))
            bad += 1
    for q in sorted(quoted - seen):
        print("BAD  §4.3 quotes %s, which is not in control.json" % q)
        bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
