#!/usr/bin/env python3
"""Checks frames.json against docs/PROTOCOL.md §4.4, independently of the Go
code: builds each raw GDP-in-UDP frame from its fields with the Python
`cryptography` package's ChaCha20-Poly1305 (or, for a vector whose "aead" is
aes-128-gcm / aes-256-gcm, AES-GCM: gdp-tunnel/2 with an AES suite) and
compares bytes, then opens it again. Exit status 0 when every vector
matches."""
import json
import struct
import sys
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

AEADS = {"": (ChaCha20Poly1305, 32), "aes-128-gcm": (AESGCM, 16), "aes-256-gcm": (AESGCM, 32)}


def aead(name, key):
    cls, size = AEADS[name]
    if len(key) != size:
        raise ValueError(f"{len(key)}-byte key for {name or 'chacha20-poly1305'}")
    return cls(key)


def frame(alg, key, frag, packet_id, index, counter, payload):
    header = struct.pack(">BBHIQ", 0x21, frag, packet_id, index, counter)
    nonce = b"\x00" * 4 + struct.pack(">Q", counter)
    return header + aead(alg, key).encrypt(nonce, payload, header)


def main():
    vectors = json.loads(Path(__file__).with_name("frames.json").read_text())
    bad = 0
    for v in vectors:
        key = bytes.fromhex(v["key"])
        payload = bytes.fromhex(v["payload"])
        want = bytes.fromhex(v["frame"])
        alg = v.get("aead", "")
        got = frame(alg, key, v["frag"], v["packet_id"], v["index"], v["counter"], payload)
        header, body = want[:16], want[16:]
        nonce = b"\x00" * 4 + want[8:16]
        opened = aead(alg, key).decrypt(nonce, body, header)
        ok = got == want and opened == payload and len(want) == len(payload) + 32
        print(("ok  " if ok else "BAD ") + v["name"])
        bad += not ok
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
