#!/usr/bin/env python3
"""Checks frames.json against docs/PROTOCOL.md §4.4, independently of the Go
code: builds each raw GDP-in-UDP frame from its fields with the Python
`cryptography` package's ChaCha20-Poly1305 and compares bytes, then opens
it again. Exit status 0 when every vector matches."""
import json
import struct
import sys
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305


def frame(key, frag, packet_id, index, counter, payload):
    header = struct.pack(">BBHIQ", 0x21, frag, packet_id, index, counter)
    nonce = b"\x00" * 4 + struct.pack(">Q", counter)
    return header + ChaCha20Poly1305(key).encrypt(nonce, payload, header)


def main():
    vectors = json.loads(Path(__file__).with_name("frames.json").read_text())
    bad = 0
    for v in vectors:
        key = bytes.fromhex(v["key"])
        payload = bytes.fromhex(v["payload"])
        want = bytes.fromhex(v["frame"])
        got = frame(key, v["frag"], v["packet_id"], v["index"], v["counter"], payload)
        header, body = want[:16], want[16:]
        nonce = b"\x00" * 4 + want[8:16]
        opened = ChaCha20Poly1305(key).decrypt(nonce, body, header)
        ok = got == want and opened == payload and len(want) == len(payload) + 32
        print(("ok  " if ok else "BAD ") + v["name"])
        bad += not ok
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
