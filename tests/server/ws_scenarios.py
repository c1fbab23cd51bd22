#!/usr/bin/python3
"""Protocol scenarios against a running gatehouse gateway, from a WebSocket
client gatehouse did not write (Python `websockets`). Started by
test_websocket.cpp with a JSON config (ports, tokens, salt, limits).

Everything protocol-specific is re-implemented here from PROTOCOL.md, not
taken from gatehouse: frame headers (§4), salted GUIDs (§6), the manifest
(§7), response codes (§5, §8.2), meta (§10), events (§9).
"""
import asyncio
import hashlib
import json
import socket
import struct
import sys
import time
import urllib.parse
import urllib.request
import uuid

import jwt
import websockets

CFG = json.load(open(sys.argv[1]))
PORT = CFG["port"]
URL = f"ws://127.0.0.1:{PORT}/connect"
TLS_URL = f"wss://127.0.0.1:{PORT}/connect"

EVENT, CLIENT, RESPONSE, META, BINARY = 0x10, 0x20, 0x40, 0x80, 0x01
NIL = bytes(16)
BROADCAST = b"\xff" * 16


def fail(message):
    raise AssertionError(message)


def check(condition, message):
    if not condition:
        fail(message)


def mint(subject, session_key=None, expires_in=600, permissions=()):
    """An HS256 access token signed on the test side (PyJWT) with the gateway's secret."""
    now = int(time.time())
    claims = {"sub": subject, "session_key": session_key or str(uuid.uuid4()), "permissions": list(permissions),
              "roles": ["player"], "iat": now, "exp": now + expires_in}
    return jwt.encode(claims, CFG["hs256_secret"], algorithm="HS256"), claims


def metric(name, labels=""):
    """One sample of the gateway's GET /metrics (0 when absent)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/metrics", timeout=5) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith(f"gatehouse_{name}{labels} "):
            return float(line.split()[-1])
    return 0.0


# --- protocol, from PROTOCOL.md ------------------------------------------------

def service_guid(session_id, endpoint_key, salt):
    """§6.1/§6.2, Bannou-compatible input order; returns the wire bytes."""
    text = f"service:{session_id}|session:{endpoint_key}|salt:{salt}"
    b = bytearray(hashlib.sha256(text.encode()).digest()[:16])
    b[6] = (b[6] & 0x0F) | (5 << 4)
    b[8] = (b[8] & 0x3F) | 0x80
    order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15]
    return bytes(b[i] for i in order)


def guid_text(wire):
    h = wire.hex()
    return f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def guid_wire(text):
    return bytes.fromhex(text.replace("-", ""))


def request(guid, payload=b"", flags=0, channel=0, sequence=0, message_id=1):
    if isinstance(payload, str):
        payload = payload.encode()
    return struct.pack(">BHI16sQ", flags, channel, sequence, guid, message_id) + payload


def parse(frame):
    check(isinstance(frame, bytes), f"expected a binary frame, got {type(frame)}")
    flags = frame[0]
    if flags & RESPONSE:
        check(len(frame) >= 16, "short response")
        _, channel, sequence, message_id, code = struct.unpack(">BHIQB", frame[:16])
        return {"response": True, "flags": flags, "channel": channel, "sequence": sequence,
                "id": message_id, "code": code, "payload": frame[16:]}
    check(len(frame) >= 31, "short request-header frame")
    _, channel, sequence, guid, message_id = struct.unpack(">BHI16sQ", frame[:31])
    return {"response": False, "flags": flags, "channel": channel, "sequence": sequence,
            "guid": guid, "id": message_id, "payload": frame[31:]}


class Client:
    """One connection: sorts incoming frames into replies and events."""

    def __init__(self, ws):
        self.ws = ws
        self.events = []
        self.replies = {}
        self.manifests = []
        self.next_id = 1000

    @classmethod
    async def connect(cls, token=None, headers=None, wait_manifest=True, **kwargs):
        extra = dict(headers or {})
        if token is not None:
            extra["Authorization"] = f"Bearer {token}"
        ws = await websockets.connect(URL if "url" not in kwargs else kwargs.pop("url"),
                                      extra_headers=extra, **kwargs)
        client = cls(ws)
        if wait_manifest:
            await client.wait_manifest()
        return client

    async def pump(self, timeout=3.0):
        frame = await asyncio.wait_for(self.ws.recv(), timeout)
        if isinstance(frame, str):
            fail(f"server sent a text frame: {frame!r}")
        m = parse(frame)
        if m["response"]:
            self.replies[m["id"]] = m
        else:
            check(m["flags"] & EVENT, f"server frame without Event flag: {m}")
            body = json.loads(m["payload"])
            if body.get("eventName") == "connect.capability-manifest":
                self.manifests.append((m, body))
            else:
                self.events.append((m, body))
        return m

    async def wait_manifest(self, count=1):
        deadline = time.monotonic() + 5
        while len(self.manifests) < count:
            check(time.monotonic() < deadline, "no manifest")
            await self.pump()
        return self.manifests[-1][1]

    def guid(self, path):
        for api in self.manifests[-1][1]["availableApis"]:
            if api["endpoint"] == path:
                return guid_wire(api["serviceId"])
        fail(f"{path} not in the manifest")

    async def call(self, guid, payload=b"{}", flags=0, channel=0, sequence=5):
        self.next_id += 1
        message_id = self.next_id
        await self.ws.send(request(guid, payload, flags, channel, sequence, message_id))
        deadline = time.monotonic() + 5
        while message_id not in self.replies:
            check(time.monotonic() < deadline, f"no reply to {message_id}")
            await self.pump()
        return self.replies.pop(message_id)

    async def wait_event(self, name):
        deadline = time.monotonic() + 5
        while True:
            for i, (m, body) in enumerate(self.events):
                if body.get("eventName") == name:
                    del self.events[i]
                    return m, body
            check(time.monotonic() < deadline, f"no event {name}")
            await self.pump()

    async def expect_close(self, code):
        try:
            while True:
                await self.pump(timeout=5)
        except websockets.ConnectionClosed:
            pass
        check(self.ws.close_code == code, f"close code {self.ws.close_code}, expected {code}")


async def expect_status(status, **kwargs):
    try:
        ws = await websockets.connect(kwargs.pop("url", URL), **kwargs)
    except websockets.exceptions.InvalidStatusCode as e:
        check(e.status_code == status, f"status {e.status_code}, expected {status}")
        return
    await ws.close()
    fail(f"upgrade accepted, expected {status}")


# --- scenarios ---------------------------------------------------------------

async def manifest_shape():
    c = await Client.connect(CFG["token_a"])
    m, body = c.manifests[0]
    check(m["flags"] == EVENT and m["channel"] == 0 and m["sequence"] == 0 and m["guid"] == NIL,
          f"manifest header {m}")
    now_ms = int(time.time() * 1000)
    check(abs((m["id"] >> 16) - now_ms) < 10000, "manifest message id is not (unix_ms << 16) | rand16")
    for key in ("eventName", "eventId", "timestamp", "sessionId", "availableApis", "version", "reason"):
        check(key in body, f"manifest lacks {key}")
    check(body["sessionId"] == CFG["session_a"], "sessionId")
    check(body["reason"] == "session_connected", "reason")
    paths = {api["endpoint"] for api in body["availableApis"]}
    check("/demo/echo" in paths and "/demo/secret" not in paths, f"permission filtering: {paths}")
    for api in body["availableApis"]:
        expected = guid_text(service_guid(CFG["session_a"], f"{api['service']}:{api['endpoint']}", CFG["salt"]))
        check(api["serviceId"] == expected, f"GUID of {api['endpoint']}: {api['serviceId']} != {expected}")
        check(("description" in api) == (api["endpoint"] in ("/demo/echo", "/connect/refresh")),
              "description only when set")
    check(c.ws.subprotocol is None, "a subprotocol was answered although none was offered")
    await c.ws.close()


async def manifest_separate_write():
    """§7.3: the manifest never shares a TCP read with the 101 (raw socket)."""
    loop = asyncio.get_running_loop()

    def handshake():
        sock = socket.create_connection(("127.0.0.1", PORT))
        sock.sendall((f"GET /connect HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {CFG['token_a']}\r\n\r\n").encode())
        first = sock.recv(65536)
        sock.settimeout(3)
        later = sock.recv(65536)
        sock.close()
        return first, later

    first, later = await loop.run_in_executor(None, handshake)
    check(first.startswith(b"HTTP/1.1 101"), f"no 101: {first[:40]!r}")
    check(first.endswith(b"\r\n\r\n"), "bytes after the 101 headers in the same read")
    check(b"Sec-WebSocket-Protocol" not in first, "subprotocol header without an offer")
    check(later[0] == 0x82 and b"connect.capability-manifest" in later, f"manifest frame {later[:8]!r}")


async def calls_and_codes():
    c = await Client.connect(CFG["token_a"])
    echo = c.guid("/demo/echo")
    r = await c.call(echo, b'{"x":1}', channel=7, sequence=0x01020304)
    check(r["code"] == 0 and r["flags"] == RESPONSE and r["payload"] == b'{"x":1}', f"echo {r}")
    check(r["channel"] == 7 and r["sequence"] == 0x01020304, "channel/sequence echoed")
    r = await c.call(c.guid("/demo/later"), b'{"later":true}')
    check(r["code"] == 0 and r["payload"] == b'{"later":true}', "answered from another thread")
    r = await c.call(c.guid("/demo/binary"))
    check(r["code"] == 0 and r["flags"] == RESPONSE | BINARY and r["payload"] == b"\x01\x02\x03", f"binary {r}")
    check((await c.call(echo, b""))["code"] == 10, "empty payload -> 10")
    check((await c.call(BROADCAST))["code"] == 10, "broadcast without Client flag -> 10")
    check((await c.call(BROADCAST, flags=CLIENT))["code"] == 40, "broadcast -> 40")
    check((await c.call(service_guid(CFG["session_b"], "demo:/demo/echo", CFG["salt"])))["code"] == 30,
          "GUID of another session -> 30")
    check((await c.call(service_guid(CFG["session_a"], "demo:/demo/secret", CFG["salt"])))["code"] == 30,
          "GUID of a forbidden endpoint -> 30")
    check((await c.call(echo, channel=1001))["code"] == 13, "channel 1001 -> 13")
    check((await c.call(c.guid("/demo/missing")))["code"] == 51, "backend 404 -> 51")
    check((await c.call(c.guid("/demo/drop")))["code"] == 60, "dropped responder -> 60")
    r = await c.call(echo, b"x" * (CFG["max_payload"] + 1))
    check(r["code"] == 11 and len(r["payload"]) == 0, "payload over the limit -> 11, no payload")
    r = await c.call(echo, b"", flags=META, channel=3)
    check(r["code"] == 0 and r["flags"] == RESPONSE | META, f"meta {r}")
    meta = json.loads(r["payload"])
    check(meta["metaType"] == "full-schema" and meta["path"] == "/demo/echo" and meta["serviceName"] == "demo",
          f"meta body {meta}")
    check(meta["data"]["request"] == {"type": "object"}, "meta request schema")
    # Event-flagged: no reply on success; then a normal call still answers.
    await c.ws.send(request(echo, b"{}", EVENT, 0, 0, 77))
    r = await c.call(echo)
    check(77 not in c.replies, "an Event request was answered")
    # Text frames -> 14, sequence from 1, not correlated.
    await c.ws.send("AUTH token")
    await c.ws.send("again")
    got = []
    deadline = time.monotonic() + 3
    while len(got) < 2:
        check(time.monotonic() < deadline, "no 14 replies")
        m = await c.pump()
        if m["response"] and m["code"] == 14:
            got.append(m)
    check([m["sequence"] for m in got] == [1, 2] and all(m["channel"] == 0 for m in got), f"14 replies {got}")
    # Unparsable frames are dropped; the connection goes on.
    await c.ws.send(b"\x00\x01")
    check((await c.call(echo))["code"] == 0, "connection alive after a short frame")
    # A message above the hard limit closes the connection with 1009.
    await c.ws.send(request(echo, b"y" * CFG["max_message"]))
    await c.expect_close(1009)


async def rate_limit():
    c = await Client.connect(CFG["token_b"])
    echo = c.guid("/demo/echo")
    for i in range(CFG["burst"] + 5):
        await c.ws.send(request(echo, b"{}", 0, 0, 0, 5000 + i))
    codes = []
    while len(codes) < CFG["burst"] + 5:
        m = await c.pump()
        if m["response"]:
            codes.append(m["code"])
    check(codes.count(12) >= 5 and codes.count(0) >= CFG["burst"] - 2, f"rate limit codes {codes.count(0)} ok, "
          f"{codes.count(12)} x 12")
    await c.ws.close()


async def events_groups_permissions():
    a = await Client.connect(CFG["token_a"])
    b = await Client.connect(CFG["token_b"])
    r = await a.call(a.guid("/test/push-self"))
    check(r["code"] == 0, "push-self")
    m, body = await a.wait_event("test.pushed")
    check(m["flags"] == EVENT and m["guid"] == NIL and m["channel"] == 0 and m["sequence"] == 0, f"event header {m}")
    check(body["to"] == CFG["session_a"] and "eventId" in body and "timestamp" in body, f"event body {body}")
    for c in (a, b):
        check((await c.call(c.guid("/chat/join"), b'{"room":"lobby"}'))["code"] == 0, "join")
    r = await a.call(a.guid("/chat/say"), b'{"room":"lobby","text":"hello"}')
    check(json.loads(r["payload"])["delivered"] == 2, "delivered to both members")
    for c in (a, b):
        _, body = await c.wait_event("chat.message")
        check(body["text"] == "hello" and body["from"] == "alice", f"chat body {body}")
    check((await b.call(b.guid("/chat/leave"), b'{"room":"lobby"}'))["code"] == 0, "leave")
    r = await a.call(a.guid("/chat/say"), b'{"room":"lobby","text":"alone"}')
    check(json.loads(r["payload"])["delivered"] == 1, "delivered to the remaining member")
    await a.wait_event("chat.message")
    # A permission change pushes a full new manifest; the new endpoint works.
    secret = service_guid(CFG["session_a"], "demo:/demo/secret", CFG["salt"])
    check((await a.call(secret))["code"] == 30, "secret before the grant")
    check((await a.call(a.guid("/test/grant")))["code"] == 0, "grant")
    body = await a.wait_manifest(2)
    check(body["reason"] == "role_changed", f"reason {body['reason']}")
    check(a.guid("/demo/secret") == secret, "new GUID follows the derivation")
    r = await a.call(secret)
    check(r["code"] == 0 and json.loads(r["payload"]) == {"secret": 42}, "secret after the grant")
    await a.ws.close()
    await b.ws.close()


async def credentials():
    # Bearer with a permission in the token.
    c = await Client.connect(CFG["token_c"])
    check(any(api["endpoint"] == "/demo/secret" for api in c.manifests[0][1]["availableApis"]), "token permission")
    await c.ws.close()
    # ApiKey.
    c = await Client.connect(headers={"Authorization": f"ApiKey {CFG['api_key']}"})
    check(c.manifests[0][1]["sessionId"] == CFG["api_key_session"], "api key session")
    await c.ws.close()
    # ?token= (opt-in, enabled in this gateway).
    url = URL + "?token=" + urllib.parse.quote(CFG["token_c"])
    c = await Client.connect(url=url)
    check(c.manifests[0][1]["sessionId"] == CFG["session_c"], "query token")
    await c.ws.close()
    # Sec-WebSocket-Protocol: the answer is the marker, never the token.
    c = await Client.connect(subprotocols=["bearer", CFG["token_c"]])
    check(c.ws.subprotocol == "bearer", f"subprotocol {c.ws.subprotocol}")
    await c.ws.close()
    # Reconnect: a token issued by the store restores the session.
    c = await Client.connect(CFG["token_c"])
    r = await c.call(c.guid("/test/reconnect-token"))
    check(r["code"] == 0, "reconnect token issued")
    token = json.loads(r["payload"])["token"]
    await c.ws.close()
    c = await Client.connect(headers={"Authorization": f"Reconnect {token}"})
    body = c.manifests[0][1]
    check(body["sessionId"] == CFG["session_c"] and body["reason"] == "session_reconnected", f"reconnect {body}")
    await c.ws.close()
    # Used once only: the second attempt is upgraded, then closed 4001.
    c = await Client.connect(headers={"Authorization": f"Reconnect {token}"}, wait_manifest=False)
    await c.expect_close(4001)


async def refusals():
    await expect_status(401)
    await expect_status(401, extra_headers={"Authorization": "Bearer not.a.jwt"})
    await expect_status(401, extra_headers={"Authorization": "Basic dXNlcjpwYXNz"})
    await expect_status(404, url=f"ws://127.0.0.1:{PORT}/elsewhere",
                        extra_headers={"Authorization": f"Bearer {CFG['token_a']}"})
    await expect_status(403, origin="https://evil.example",
                        extra_headers={"Authorization": f"Bearer {CFG['token_a']}"})
    c = await Client.connect(CFG["token_a"], origin="https://game.example")
    await c.ws.close()
    # Connect rate per source address: from 127.0.0.2 (loopback), bursts run out.
    statuses = []
    for _ in range(70):
        sock = socket.create_connection(("127.0.0.1", PORT), source_address=("127.0.0.2", 0))
        try:
            ws = await websockets.connect(URL, sock=sock)
            await ws.close()
            statuses.append(101)
        except websockets.exceptions.InvalidStatusCode as e:
            statuses.append(e.status_code)
    check(statuses[0] == 401 and statuses[-1] == 429, f"connect rate statuses {statuses}")
    # Caps, on the second gateway (2 connections, 1 session per account).
    capped = f"ws://127.0.0.1:{CFG['capped_port']}/connect"
    a = await Client.connect(CFG["token_a"], url=capped)
    await expect_status(503, url=capped, extra_headers={"Authorization": f"Bearer {CFG['token_a2']}"})
    b = await Client.connect(CFG["token_b"], url=capped)
    await expect_status(503, url=capped, extra_headers={"Authorization": f"Bearer {CFG['token_c']}"})
    await a.ws.close()
    await b.ws.close()


async def keepalive():
    """The gateway pings (configured every 100 ms here); websockets answers by itself."""
    c = await Client.connect(CFG["token_a"])
    pings = []
    original = c.ws.write_frame

    async def spy(fin, opcode, data, **kwargs):
        if opcode == 0xA:  # pong: websockets is answering a ping
            pings.append(data)
        return await original(fin, opcode, data, **kwargs)

    c.ws.write_frame = spy
    deadline = time.monotonic() + 3
    while len(pings) < 2:
        check(time.monotonic() < deadline, "no pings from the gateway")
        try:
            await c.pump(timeout=0.2)
        except asyncio.TimeoutError:
            pass
    await c.ws.close()


async def replacement():
    first = await Client.connect(CFG["token_b"])
    second = await Client.connect(CFG["token_b"])
    await first.expect_close(4002)
    check((await second.call(second.guid("/demo/echo")))["code"] == 0, "the new connection works")
    await second.ws.close()
    check(second.ws.close_code == 1000, "client close answered")


async def fragmented_request():
    """§18: fragmented WebSocket messages are reassembled before dispatch."""
    c = await Client.connect(CFG["token_a"])
    frame = request(c.guid("/demo/echo"), b'{"fragmented":"' + b"z" * 300 + b'"}', 0, 0, 0, 4242)
    await c.ws.send([frame[:10], frame[10:40], frame[40:]])
    deadline = time.monotonic() + 3
    while 4242 not in c.replies:
        check(time.monotonic() < deadline, "no reply to the fragmented request")
        await c.pump()
    r = c.replies.pop(4242)
    check(r["code"] == 0 and r["payload"] == frame[31:], "fragmented request echoed whole")
    await c.ws.close()


async def tls():
    """wss:// with the gateway's certificate; TLS 1.2 at least."""
    import ssl
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(CFG["tls_ca"])
    c = await Client.connect(CFG["token_a"], url=TLS_URL, ssl=context)
    version = c.ws.transport.get_extra_info("ssl_object").version()
    check(version in ("TLSv1.2", "TLSv1.3"), f"TLS version {version}")
    r = await c.call(c.guid("/demo/echo"), b'{"tls":true}')
    check(r["code"] == 0 and r["payload"] == b'{"tls":true}', "echo over TLS")
    await c.ws.close()
    # A client limited to TLS 1.2 still works; plain ws:// on the TLS port does not.
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(CFG["tls_ca"])
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    c = await Client.connect(CFG["token_a"], url=TLS_URL, ssl=old)
    check(c.ws.transport.get_extra_info("ssl_object").version() == "TLSv1.2", "TLS 1.2 client")
    await c.ws.close()
    try:
        await asyncio.wait_for(websockets.connect(URL, extra_headers={"Authorization": f"Bearer {CFG['token_a']}"}), 5)
        fail("plain ws:// accepted on the TLS port")
    except (websockets.exceptions.InvalidMessage, websockets.exceptions.InvalidHandshake, ConnectionError,
            asyncio.TimeoutError, EOFError):
        pass


async def refresh():
    """§18: the built-in /connect/refresh swaps in a new token of the same account."""
    c = await Client.connect(CFG["token_a"])
    r = await c.call(c.guid("/connect/refresh"), json.dumps({"accessToken": CFG["token_a"]}))
    check(r["code"] == 0 and "expiresAt" in json.loads(r["payload"]), f"refresh {r}")
    r = await c.call(c.guid("/connect/refresh"), json.dumps({"accessToken": CFG["token_b"]}))
    check(r["code"] == 52, "another account's token -> 52")
    await c.ws.close()


async def shutdown():
    """Graceful shutdown: a binary disconnect notification with a reconnection token, then 1001."""
    c = await Client.connect(CFG["token_a"])
    r = await c.call(c.guid("/test/shutdown"))
    check(r["code"] == 0, "shutdown requested")
    _, body = await c.wait_event("connect.disconnect-notification")
    check(body["reason"] == "server_shutdown" and body["reconnectable"] is True, f"notification {body}")
    check(len(body["reconnectionToken"]) == 44 and body["expiresAt"].endswith("Z"), f"token fields {body}")
    await c.expect_close(1001)
    # No longer accepting: the listener is closed (or answers 503 while draining).
    try:
        ws = await asyncio.wait_for(websockets.connect(URL, extra_headers={"Authorization": f"Bearer {CFG['token_a']}"}), 3)
        await ws.close()
        fail("a stopped gateway accepted a connection")
    except (OSError, asyncio.TimeoutError, websockets.exceptions.InvalidHandshake):
        pass


async def token_expiry():
    """§18: a token that expires while connected ends the session: a binary
    disconnect notification without a reconnection token, then 4001."""
    token, claims = mint("dave", expires_in=2)
    c = await Client.connect(token)
    check((await c.call(c.guid("/demo/echo"), b'{"alive":1}'))["code"] == 0, "works before expiry")
    _, body = await c.wait_event("connect.disconnect-notification")
    closed_at = time.time()
    check(body["reason"] == "session_expired" and body["reconnectable"] is False, f"notification {body}")
    check("reconnectionToken" not in body, f"no reconnection token on expiry: {body}")
    await c.expect_close(4001)
    # Not before the token's exp (second resolution), and promptly after it.
    check(claims["exp"] - 0.05 <= closed_at < claims["exp"] + 1.5,
          f"closed at {closed_at:.3f}, token exp {claims['exp']}")
    # An expired token cannot open a session again (within the validator's leeway
    # it is upgraded and closed 4001 at once; beyond it, refused with 401).
    try:
        again = await Client.connect(token, wait_manifest=False)
        await again.expect_close(4001)
        check(not again.manifests, "an expired token got a manifest")
        print("   expired token again: upgraded, closed 4001")
    except websockets.exceptions.InvalidStatusCode as e:
        check(e.status_code == 401, f"status {e.status_code}")
        print("   expired token again: 401")


async def expiry_and_refresh():
    """Both take seconds of wall time: run them side by side."""
    await asyncio.gather(token_expiry(), refresh_keeps_session())


async def refresh_keeps_session():
    """§18: /connect/refresh with a later token moves the expiry: the connection
    outlives the first token, and the new expiry is the one enforced."""
    first, claims = mint("erin", expires_in=2)
    c = await Client.connect(first)
    second, later = mint("erin", claims["session_key"], expires_in=4)
    r = await c.call(c.guid("/connect/refresh"), json.dumps({"accessToken": second}))
    check(r["code"] == 0, f"refresh {r}")
    await asyncio.sleep(max(0.0, claims["exp"] + 0.5 - time.time()))
    r = await c.call(c.guid("/demo/echo"), b'{"after":"first exp"}')
    check(r["code"] == 0 and r["payload"] == b'{"after":"first exp"}', "alive after the first token's exp")
    deadline = later["exp"] + 2
    while True:
        try:
            await c.pump(timeout=max(0.1, deadline - time.time()))
        except websockets.ConnectionClosed:
            break
        check(time.time() < deadline, "still open after the refreshed token's exp")
    check(c.ws.close_code == 4001 and time.time() >= later["exp"] - 0.05, f"close {c.ws.close_code}")
    names = [b.get("eventName") for _, b in c.events]
    check(names == ["connect.disconnect-notification"], f"events {names}")


async def revocation():
    """§18: revocation closes the affected connections with 4002 (notified,
    not reconnectable); the revoked session cannot come back; others go on."""
    admin = await Client.connect(CFG["token_a"])
    victim_token, victim_claims = mint("frank")
    victim = await Client.connect(victim_token)
    bystander = await Client.connect(mint("hank")[0])
    started = time.monotonic()
    r = await admin.call(admin.guid("/test/revoke-session"), json.dumps({"session": victim_claims["session_key"]}))
    check(r["code"] == 0, f"revoke-session {r}")
    _, body = await victim.wait_event("connect.disconnect-notification")
    check(body["reason"] == "kicked" and body["reconnectable"] is False and "reconnectionToken" not in body,
          f"notification {body}")
    await victim.expect_close(4002)
    revoke_ms = (time.monotonic() - started) * 1000
    # The same (still valid) JWT names a revoked session: upgraded, then 4002.
    again = await Client.connect(victim_token, wait_manifest=False)
    await again.expect_close(4002)
    check(not again.manifests, "a revoked session got a manifest")

    # Account-wide, through the revocation list the gateway watches: every
    # connection of the account closes; other accounts' sessions do not.
    gina = [await Client.connect(mint("gina")[0]) for _ in range(2)]
    r = await admin.call(admin.guid("/test/revoke-account"), json.dumps({"account": "gina"}))
    check(r["code"] == 0, f"revoke-account {r}")
    for c in gina:
        _, body = await c.wait_event("connect.disconnect-notification")
        check(body["reason"] == "kicked", f"notification {body}")
        await c.expect_close(4002)
    r = await bystander.call(bystander.guid("/demo/echo"), b'{"still":"here"}')
    check(r["code"] == 0 and r["payload"] == b'{"still":"here"}', "bystander unaffected")
    check(not bystander.events, f"bystander got {bystander.events}")
    await bystander.ws.close()
    await admin.ws.close()
    print(f"   revocation to close: {revoke_ms:.1f} ms")


async def slow_consumer():
    """§18: a client that stops reading is closed with 4005 once its send queue
    passes max_send_queue_bytes; one that reads keeps up with more than that;
    a bystander is unaffected; the session can come back (4005 is retryable)."""
    before = await asyncio.to_thread(metric, "disconnects_total", '{code="4005"}')
    # A reader: 2 MiB in 8 KiB events over ~0.5 s (twice the queue limit).
    token, _ = mint("ivan")
    reader = await Client.connect(token)
    r = await reader.call(reader.guid("/test/flood"), json.dumps({"count": 256, "size": 8192, "interval_us": 2000}))
    check(r["code"] == 0, f"flood {r}")
    received = 0
    while received < 256:
        m = await reader.pump(timeout=5)
        if not m["response"]:
            received = sum(1 for _, b in reader.events if b.get("eventName") == "test.flood")
    check(reader.ws.open, "a client that reads was closed")
    await reader.ws.close()

    # A client that stops reading: 64 KiB events every millisecond, up to 64 MiB.
    token, claims = mint("judy")
    slow = await Client.connect(token, max_queue=1, read_limit=1 << 16)
    bystander = await Client.connect(mint("karl")[0])
    r = await slow.call(slow.guid("/test/flood"), json.dumps({"count": 1024, "size": 65536, "interval_us": 1000}))
    check(r["code"] == 0, f"flood {r}")
    deadline = time.monotonic() + 10
    while await asyncio.to_thread(metric, "disconnects_total", '{code="4005"}') < before + 1:
        check(time.monotonic() < deadline, "no 4005 for a client that stopped reading")
        r = await bystander.call(bystander.guid("/demo/echo"), b'{"meanwhile":1}')
        check(r["code"] == 0, "bystander call during the flood")
        await asyncio.sleep(0.1)
    # Drained now, the slow client finds its events cut short and the
    # connection gone: the close frame if it arrived before the server gave up
    # waiting for the close handshake, else an abrupt end.
    events = 0
    try:
        while True:
            m = await slow.pump(timeout=5)
            events += not m["response"]
    except websockets.ConnectionClosed:
        pass
    check(slow.ws.close_code in (4005, 1006), f"close code {slow.ws.close_code}")
    check(events < 1024, f"all {events} events reached a client that did not read")
    print(f"   slow consumer: {events} of 1024 events read, close code {slow.ws.close_code}")
    r = await bystander.call(bystander.guid("/demo/echo"), b'{"after":1}')
    check(r["code"] == 0, "bystander after the flood")
    await bystander.ws.close()
    # 4005 is retryable (§13.2): the same credential resumes the session.
    back = await Client.connect(token)
    check(back.manifests[0][1]["sessionId"] == claims["session_key"], "same session after 4005")
    await back.ws.close()


async def heartbeat_timeout():
    """§14, §18: a client that stops answering pings is dropped pong_timeout
    after a ping. The capped gateway pings every 100 ms and waits 300 ms: a
    later ping must not cancel an earlier one's deadline. The drop is
    retryable, so the same credential resumes the session."""
    capped = f"ws://127.0.0.1:{CFG['capped_port']}/connect"
    token, claims = mint("lena")
    c = await Client.connect(token, url=capped)
    original = c.ws.write_frame

    async def no_pongs(fin, opcode, data, **kwargs):
        if opcode == 0xA:
            return None
        return await original(fin, opcode, data, **kwargs)

    c.ws.write_frame = no_pongs
    started = time.monotonic()
    try:
        while True:
            await c.pump(timeout=5)
    except websockets.ConnectionClosed:
        pass
    elapsed = time.monotonic() - started
    check(c.ws.close_code == 1006, f"close code {c.ws.close_code}")
    check(0.25 <= elapsed < 2.0, f"dropped after {elapsed:.2f} s (ping every 0.1 s, pong timeout 0.3 s)")
    back = await Client.connect(token, url=capped)
    body = back.manifests[0][1]
    check(body["sessionId"] == claims["session_key"] and body["reason"] == "session_reconnected", f"resumed {body}")
    await back.ws.close()
    print(f"   heartbeat timeout: dropped after {elapsed * 1000:.0f} ms")


async def main():
    if CFG.get("tls_ca"):
        scenarios = (tls,)
    else:
        scenarios = (manifest_shape, manifest_separate_write, fragmented_request, calls_and_codes, rate_limit,
                     events_groups_permissions, credentials, refusals, keepalive, replacement, refresh,
                     expiry_and_refresh, heartbeat_timeout, revocation, slow_consumer, shutdown)
    for scenario in scenarios:
        started = time.monotonic()
        try:
            await scenario()
        except Exception as e:  # noqa: BLE001 - report which scenario failed
            print(f"FAILED {scenario.__name__}: {type(e).__name__}: {e}")
            sys.exit(1)
        print(f"ok {scenario.__name__} ({time.monotonic() - started:.2f} s)")
    print("ALL SCENARIOS PASSED")


asyncio.run(main())
