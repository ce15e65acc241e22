#!/usr/bin/env python3
"""Writes vectors.txt: gdpnet PDU test vectors (docs/PROTOCOL.md section 1).

This encoder is written from the protocol text alone, independently of the Go
package, so that the Go tests check the Go codec against a second
implementation. Run from this directory: python3 gen_vectors.py > vectors.txt
"""
import base64
import hashlib
import struct

TYPES = ["DATA", "NAK", "ADVERTISE", "WITHDRAW", "ADVERTISE_RESULT",
         "ECHO_REQUEST", "ECHO_REPLY", "KEEPALIVE"]
CODES = ["NONE", "NO_ROUTE", "TTL_EXPIRED", "TOO_BIG", "RATE_LIMITED",
         "FORBIDDEN", "MALFORMED"]


def name(label):
    return hashlib.sha256(label.encode()).digest()


def name_str(n):
    return base64.urlsafe_b64encode(n).rstrip(b"=").decode()


DST, SRC, ROUTER = name("gdpnet vector dst"), name("gdpnet vector src"), name("gdpnet vector router")


def pdu(typ, ttl=32, flags=0, code=0, seq=0, dst=DST, src=SRC, options=b"", payload=b"",
        version=1, words=None, plen=None):
    """Encodes a PDU; options are padded with Pad1 (0x00) to 4 bytes."""
    options = options + b"\x00" * (-len(options) % 4)
    if words is None:
        words = (76 + len(options)) // 4
    if plen is None:
        plen = len(payload)
    fixed = struct.pack(">BBBBBBHI32s32s", version, words, typ, ttl, flags, code, plen, seq, dst, src)
    return fixed + options + payload


def flags_str(f):
    if f == 0:
        return "0"
    parts = []
    if f & 1:
        parts.append("MULTICAST")
    if f & 2:
        parts.append("NO_NAK")
    return "|".join(parts)


def hexrows(b):
    return "\n".join("  " + " ".join("%02x" % x for x in b[i:i + 16]) for i in range(0, len(b), 16))


VECTORS = []


def valid(vname, desc, raw, typ, ttl, flags, code, seq, dst, src, options, payload, canonical=None, extra=()):
    v = [("name", vname), ("desc", desc)] + list(extra) + [
        ("type", TYPES[typ]), ("ttl", str(ttl)), ("flags", flags_str(flags)), ("code", CODES[code]),
        ("seq", str(seq)), ("dst", name_str(dst)), ("src", name_str(src)),
        ("options", options.hex()), ("payload", payload.hex()), ("hex", raw)]
    if canonical is not None:
        v.append(("canonical", canonical))
    VECTORS.append(v)


def invalid(vname, desc, raw, err):
    VECTORS.append([("name", vname), ("desc", desc), ("error", err), ("hex", raw)])


# --- valid PDUs -------------------------------------------------------------
p = b"hello, gdp"
valid("data-payload", "DATA, TTL 32, sequence 1, a 10-byte payload, no options",
      pdu(0, seq=1, payload=p), 0, 32, 0, 0, 1, DST, SRC, b"", p)

p = bytes([0xAA, 0xBB, 0xCC])
valid("data-multicast-nonak", "DATA with MULTICAST and NO_NAK, TTL 7, sequence 0xdeadbeef",
      pdu(0, ttl=7, flags=3, seq=0xDEADBEEF, payload=p), 0, 7, 3, 0, 0xDEADBEEF, DST, SRC, b"", p)

opt = bytes([2, 1, 1])
p = bytes([0x40]) + bytes(range(1, 16))
valid("data-quic", "DATA carrying a QUIC packet (section 9): CONTENT option (type 2, length 1, value 1, "
      "1 Pad1), header length 20 words, sequence 9, a 16-byte payload starting with QUIC's fixed bit 0x40",
      pdu(0, seq=9, options=opt, payload=p), 0, 32, 0, 0, 9, DST, SRC, opt + b"\x00", p)

orig_payload = bytes(range(100))
orig = pdu(0, ttl=0, seq=7, payload=orig_payload)
valid("data-ttl0", "DATA that arrives with TTL 0 (a router NAKs it with TTL_EXPIRED); 100-byte payload 00..63",
      orig, 0, 0, 0, 0, 7, DST, SRC, b"", orig_payload)

opt = bytes([1, 32]) + ROUTER + b"\x00\x00"
echo = orig[:128]
valid("nak-ttl-expired",
      "NAK TTL_EXPIRED about data-ttl0, from the router: sequence 7, to data-ttl0's source, "
      "reporter option (type 1, length 32, the router's name, 2 Pad1), payload = first 128 bytes of data-ttl0",
      pdu(1, code=2, seq=7, dst=SRC, src=ROUTER, options=opt, payload=echo),
      1, 32, 0, 2, 7, SRC, ROUTER, opt, echo, extra=[("nak-of", "data-ttl0"), ("reporter", name_str(ROUTER))])

p = b"ping0001"
valid("echo-request", "ECHO_REQUEST, sequence 42, 8-byte payload",
      pdu(5, seq=42, payload=p), 5, 32, 0, 0, 42, DST, SRC, b"", p)
valid("echo-reply", "ECHO_REPLY answering echo-request: names swapped, same sequence and payload",
      pdu(6, seq=42, dst=SRC, src=DST, payload=p), 6, 32, 0, 0, 42, SRC, DST, b"", p)

valid("keepalive", "KEEPALIVE, TTL 1, no options, no payload: the smallest PDU (76 bytes)",
      pdu(7, ttl=1), 7, 1, 0, 0, 0, DST, SRC, b"", b"")

opt = bytes([0x00, 0x7F, 0x03]) + b"abc" + bytes([0x00, 0x00])
valid("options-padding",
      "DATA with options Pad1, an unknown option (type 0x7f, length 3, 'abc') that is skipped, 2 Pad1: "
      "header length 21 words",
      pdu(0, seq=3, options=opt, payload=b"\x01"), 0, 32, 0, 0, 3, DST, SRC, opt, b"\x01")

opt = bytes([0x10, 0x00, 0x11, 0x00])
valid("options-empty-tlv", "ADVERTISE with two zero-length options (types 0x10, 0x11); empty payload",
      pdu(2, seq=9, options=opt), 2, 32, 0, 0, 9, DST, SRC, opt, b"")

p = b"x"
valid("reserved-flags", "DATA with flags 0xfd: reserved bits 2-7 are ignored on receipt and sent as 0",
      pdu(0, flags=0xFD, seq=5, payload=p), 0, 32, 1, 0, 5, DST, SRC, b"", p,
      canonical=pdu(0, flags=0x01, seq=5, payload=p))

# --- invalid PDUs -----------------------------------------------------------
good = pdu(0, seq=1, payload=b"hello, gdp")
invalid("short", "75 bytes: shorter than the fixed header", good[:75], "short")
invalid("version-2", "version 0x02", pdu(0, version=2, payload=b"hi"), "version")
invalid("version-quic", "first byte 0x40 (QUIC's fixed bit): not a GDP PDU", pdu(0, version=0x40), "version")
invalid("header-len-18", "header length 18 words (< 19)", pdu(0, words=18), "header-length")
invalid("header-len-64", "header length 64 words (> 63), with 256 header bytes present",
        pdu(0, words=64) + b"\x00" * 180, "header-length")
invalid("length-short", "payload length 10 but 9 bytes follow", good[:-1], "length")
invalid("length-long", "payload length 10 but 11 bytes follow", good + b"\x00", "length")
invalid("length-header-past-end", "header length 20 words but only the 76-byte fixed header is present",
        pdu(0, words=20), "length")
invalid("option-overrun", "option type 0x05 claims 3 bytes, only 2 remain in the header",
        pdu(0, options=bytes([5, 3, 1, 2])), "option")
invalid("option-no-length", "last header byte is an option type (0x05) with no length byte",
        pdu(0, options=bytes([0, 0, 0, 5])), "option")
invalid("unknown-type", "type 0x08", pdu(8, payload=b"?"), "unknown-type")
invalid("code-on-data", "DATA with code 2", pdu(0, code=2), "code")
invalid("nak-code-0", "NAK with code 0", pdu(1, code=0, dst=SRC, src=ROUTER), "code")

print("# gdpnet PDU test vectors (docs/PROTOCOL.md section 1), written by gen_vectors.py,")
print("# an encoder independent of the Go code. Records are separated by blank lines;")
print("# 'hex' is the whole datagram. A valid record lists the decoded fields (options and")
print("# payload in hex, padding included); 'canonical', when present, is what an encoder")
print("# sends for those fields. An invalid record names the error instead. Names:")
print("#   dst      = SHA-256(\"gdpnet vector dst\")    = " + name_str(DST))
print("#   src      = SHA-256(\"gdpnet vector src\")    = " + name_str(SRC))
print("#   router   = SHA-256(\"gdpnet vector router\") = " + name_str(ROUTER))
for v in VECTORS:
    print()
    for k, val in v:
        if isinstance(val, bytes):
            print(k + ":")
            print(hexrows(val))
        else:
            print((k + ": " + val).rstrip())
