#!/usr/bin/env python3
r"""A program on the GDP gateway using only Python's standard library.

It talks HTTP/JSON to `gdp gateway` (docs/GATEWAY.md) and shows the three
things an application does with it:

  1. a key-value store with time travel: put, overwrite, read now and as
     of an earlier seqno and time;
  2. a file with versions: write two versions, read the old one back;
  3. a subscription over a WebSocket: follow a capsule from seqno 1 while
     records are appended, every seqno once and in order (a minimal
     WebSocket client, RFC 6455, is at the end of this file; the gateway
     pings an idle subscription every 15 s, so its 30 s socket timeout
     only fires when the gateway is gone).

--owner and --servers may be left out when the gateway's configuration
sets them (capsules: owner, servers).

Usage (the unix socket needs no token):
  python3 examples/gateway.py --socket $XDG_RUNTIME_DIR/gdp/gateway.sock \
      --owner alice --servers=S1,S2
or over the loopback TCP listener with its token:
  python3 examples/gateway.py --url http://127.0.0.1:8039 \
      --token-file $XDG_RUNTIME_DIR/gdp/gateway.token --owner alice --servers=S1,S2
"""

import argparse
import base64
import datetime
import hashlib
import http.client
import json
import os
import socket
import struct
import sys
import time
import urllib.parse


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket."""

    def __init__(self, path, timeout=30):
        super().__init__("gateway", timeout=timeout)
        self.path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.path)
        self.sock = s


class Gateway:
    def __init__(self, sock_path=None, url=None, token=None):
        self.sock_path, self.token = sock_path, token
        if url:
            u = urllib.parse.urlsplit(url)
            self.host, self.port = u.hostname, u.port or 80

    def conn(self, timeout=30):
        if self.sock_path:
            return UnixHTTPConnection(self.sock_path, timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def headers(self, ctype=None):
        h = {}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        if ctype:
            h["Content-Type"] = ctype
        return h

    def call(self, method, path, body=None, ctype="application/json", raw=False):
        c = self.conn()
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        c.request(method, path, body=body, headers=self.headers(ctype if body is not None else None))
        r = c.getresponse()
        data = r.read()
        c.close()
        if r.status >= 300:
            try:
                err = json.loads(data)
            except ValueError:
                err = {"error": data.decode(errors="replace"), "reason": "?"}
            raise RuntimeError("%s %s: %d %s (%s)" % (method, path, r.status, err.get("error"), err.get("reason")))
        return data if raw else json.loads(data)


def check(cond, what):
    if not cond:
        print("FAILED:", what)
        sys.exit(1)


def create(gw, owner, servers, description):
    """Creates a capsule; an owner or servers left out take the gateway's defaults."""
    req = {"description": description}
    if owner:
        req["owner"] = owner
    if servers:
        req["servers"] = servers
    return gw.call("POST", "/v1/capsules", req)["capsule"]


def kv_time_travel(gw, owner, servers):
    c = create(gw, owner, servers, "python kv")
    first = gw.call("PUT", "/v1/kv/%s/keys/colour" % c, {"value": "red"})
    time.sleep(0.05)
    between = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    time.sleep(0.05)
    gw.call("PUT", "/v1/kv/%s/keys/colour" % c, {"value": "green"})
    now = gw.call("GET", "/v1/kv/%s/keys/colour" % c)["value"]
    old = gw.call("GET", "/v1/kv/%s/keys/colour?seqno=%d" % (c, first["seqno"]))["value"]
    then = gw.call("GET", "/v1/kv/%s/keys/colour?at=%s" % (c, urllib.parse.quote(between)))["value"]
    hist = [v.get("value") for v in gw.call("GET", "/v1/kv/%s/history/colour" % c)["versions"]]
    check(now == "green" and old == "red" and then == "red" and hist == ["red", "green"], "kv time travel: %s %s %s %s" % (now, old, then, hist))
    print("kv: colour is %s now, was %s at seqno %d and at %s; history %s" % (now, old, first["seqno"], between, hist))


def file_versions(gw, owner, servers):
    c = create(gw, owner, servers, "python files")
    v1 = gw.call("PUT", "/v1/files/%s/content/notes.txt" % c, b"first version\n", ctype="application/octet-stream")
    gw.call("PUT", "/v1/files/%s/content/notes.txt" % c, b"second version\n", ctype="application/octet-stream")
    now = gw.call("GET", "/v1/files/%s/content/notes.txt" % c, raw=True)
    old = gw.call("GET", "/v1/files/%s/content/notes.txt?seqno=%d" % (c, v1["seqno"]), raw=True)
    versions = gw.call("GET", "/v1/files/%s/versions/notes.txt" % c)["versions"]
    check(now == b"second version\n" and old == b"first version\n" and len(versions) == 2, "file versions")
    check(hashlib.sha256(old).hexdigest() == v1["sha256"], "old version's hash")
    print("file: notes.txt has %d versions; the first (seqno %d) reads %r" % (len(versions), v1["seqno"], old.decode()))


def subscription(gw, owner, servers):
    c = create(gw, owner, servers, "python subscription")
    gw.call("POST", "/v1/capsules/%s/records" % c, {"data": "before the subscription"})
    ws = WebSocket(gw, "/v1/capsules/%s/subscribe?from=1" % c)
    hello = ws.recv_json()
    check(hello["type"] == "subscribed" and hello["from"] == 1, "subscribed: %s" % hello)
    batch = "".join(json.dumps({"data": "event %d" % i}) + "\n" for i in range(2, 6)).encode()
    gw.call("POST", "/v1/capsules/%s/records" % c, batch, ctype="application/x-ndjson")
    got = []
    while len(got) < 5:
        m = ws.recv_json()
        check(m["type"] == "record", "message %s" % m)
        got.append((m["seqno"], m.get("data")))
    ws.close()
    check([s for s, _ in got] == [1, 2, 3, 4, 5], "seqnos %s" % got)
    print("subscription: %d records, seqnos %s, last %r" % (len(got), [s for s, _ in got], got[-1][1]))


class WebSocket:
    """A minimal WebSocket client (RFC 6455): text frames in, close out."""

    def __init__(self, gw, path):
        c = gw.conn(timeout=30)
        c.connect()
        self.sock = c.sock
        key = base64.b64encode(os.urandom(16)).decode()
        lines = ["GET %s HTTP/1.1" % path, "Host: gateway", "Upgrade: websocket", "Connection: Upgrade",
                 "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"]
        if gw.token:
            lines.append("Authorization: Bearer " + gw.token)
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise RuntimeError("connection closed during the WebSocket handshake")
            head += chunk
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            raise RuntimeError("WebSocket handshake refused: %s" % status.decode())
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        if b"Sec-WebSocket-Accept: " + accept not in head:
            raise RuntimeError("bad Sec-WebSocket-Accept")

    def _read(self, n):
        b = b""
        while len(b) < n:
            chunk = self.sock.recv(n - len(b))
            if not chunk:
                raise RuntimeError("WebSocket closed")
            b += chunk
        return b

    def _send(self, opcode, payload=b""):
        mask = os.urandom(4)
        hdr = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            hdr += bytes([0x80 | n])
        elif n < 65536:
            hdr += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            hdr += bytes([0x80 | 127]) + struct.pack(">Q", n)
        self.sock.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def recv(self):
        msg = b""
        while True:
            b0, b1 = self._read(2)
            fin, opcode, n = b0 & 0x80, b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(n)  # frames from a server are not masked
            if opcode == 0x9:  # ping
                self._send(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            if opcode == 0x8:
                raise RuntimeError("WebSocket closed by the gateway: %r" % payload[2:])
            msg += payload
            if fin:
                return msg

    def recv_json(self):
        return json.loads(self.recv())

    def close(self):
        try:
            self._send(0x8, struct.pack(">H", 1000))
        finally:
            self.sock.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--socket", help="the gateway's unix socket")
    ap.add_argument("--url", help="the gateway's loopback TCP listener, e.g. http://127.0.0.1:8039")
    ap.add_argument("--token-file", help="the token file (with --url)")
    ap.add_argument("--owner", help="keystore alias of the capsules' owner (and writer); default: the gateway's capsules: owner")
    ap.add_argument("--servers", default="",
                    help="replica server names, comma-separated; write --servers=NAMES (a name may begin with '-'); default: the gateway's capsules: servers")
    a = ap.parse_args()
    token = open(a.token_file).read().strip() if a.token_file else None
    gw = Gateway(sock_path=a.socket, url=a.url, token=token)
    st = gw.call("GET", "/v1/status")
    print("gateway: identity %s attached to router %s" % (st["identity"], st["router"]))
    servers = [s for s in a.servers.split(",") if s]
    kv_time_travel(gw, a.owner, servers)
    file_versions(gw, a.owner, servers)
    subscription(gw, a.owner, servers)
    print("ok")


if __name__ == "__main__":
    main()
