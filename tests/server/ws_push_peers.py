#!/usr/bin/python3
"""Reconnection with queued events (§13.4, §18), server-to-client requests
(§12.3) and peer routing (§12.1, §12.2) against a running gatehouse gateway,
from a WebSocket client gatehouse did not write (Python `websockets`).
Started by test_websocket_push_peers.cpp with a JSON config (ports, tokens).

Frame layouts are re-implemented here from PROTOCOL.md §4, not taken from
gatehouse.
"""
import asyncio
import json
import struct
import sys
import time

import websockets

CFG = json.load(open(sys.argv[1]))
URL = f"ws://127.0.0.1:{CFG['port']}/connect"
EXTERNAL_URL = f"ws://127.0.0.1:{CFG['external_port']}/connect"

BINARY, EVENT, CLIENT, RESPONSE = 0x01, 0x10, 0x20, 0x40
BROADCAST = b"\xff" * 16


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def guid_wire(text):
    return bytes.fromhex(text.replace("-", ""))


def guid_text(wire):
    h = wire.hex()
    return f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def request(guid, payload=b"", flags=0, channel=0, sequence=0, message_id=1):
    if isinstance(payload, str):
        payload = payload.encode()
    return struct.pack(">BHI16sQ", flags, channel, sequence, guid, message_id) + payload


def response(flags, channel, sequence, message_id, code, payload=b""):
    if isinstance(payload, str):
        payload = payload.encode()
    return struct.pack(">BHIQB", flags | RESPONSE, channel, sequence, message_id, code) + payload


def parse(frame):
    check(isinstance(frame, bytes), f"expected a binary frame, got {type(frame)}")
    flags = frame[0]
    if flags & RESPONSE:
        check(len(frame) >= 16, "short response")
        _, channel, sequence, message_id, code = struct.unpack(">BHIQB", frame[:16])
        return {"kind": "response", "flags": flags, "channel": channel, "sequence": sequence,
                "id": message_id, "code": code, "payload": frame[16:], "raw": frame}
    check(len(frame) >= 31, "short request-header frame")
    _, channel, sequence, guid, message_id = struct.unpack(">BHI16sQ", frame[:31])
    kind = "event" if (flags & EVENT) and not (flags & CLIENT) else ("peer" if flags & CLIENT else "request")
    return {"kind": kind, "flags": flags, "channel": channel, "sequence": sequence, "guid": guid,
            "id": message_id, "payload": frame[31:], "raw": frame}


class Client:
    """One connection; sorts what arrives into replies, events, requests, peer frames."""

    def __init__(self, ws):
        self.ws = ws
        self.replies = {}
        self.events = []      # (name, body) in arrival order, manifests included
        self.requests = []    # server-to-client requests
        self.peer = []        # forwarded peer frames (raw)
        self.next_id = 1000

    @classmethod
    async def connect(cls, authorization, url=URL):
        ws = await websockets.connect(url, extra_headers={"Authorization": authorization})
        client = cls(ws)
        await client.wait(lambda: client.manifests())
        return client

    def manifests(self):
        return [b for n, b in self.events if n == "connect.capability-manifest"]

    def names(self):
        return [n for n, _ in self.events if n != "connect.capability-manifest"]

    async def pump(self, timeout=5.0):
        m = parse(await asyncio.wait_for(self.ws.recv(), timeout))
        if m["kind"] == "response":
            self.replies[m["id"]] = m
        elif m["kind"] == "event":
            body = json.loads(m["payload"])
            self.events.append((body.get("eventName"), body))
        elif m["kind"] == "peer":
            self.peer.append(m["raw"])
        else:
            self.requests.append(m)
        return m

    async def wait(self, condition, what="condition", timeout=5.0):
        deadline = time.monotonic() + timeout
        while not condition():
            check(time.monotonic() < deadline, f"timed out waiting for {what}")
            await self.pump(timeout=max(0.05, deadline - time.monotonic()))

    def guid(self, path):
        for api in self.manifests()[-1]["availableApis"]:
            if api["endpoint"] == path:
                return guid_wire(api["serviceId"])
        raise AssertionError(f"{path} not in the manifest")

    async def send_and_wait(self, frame, message_id):
        await self.ws.send(frame)
        await self.wait(lambda: message_id in self.replies, f"reply {message_id}")
        return self.replies.pop(message_id)

    async def call(self, path, body=None):
        self.next_id += 1
        payload = json.dumps(body if body is not None else {})
        r = await self.send_and_wait(request(self.guid(path), payload, message_id=self.next_id), self.next_id)
        check(r["code"] == 0, f"{path} answered {r['code']}")
        return json.loads(r["payload"]) if r["payload"] else None

    async def event(self, name):
        await self.wait(lambda: name in self.names(), f"event {name}")
        for i, (n, body) in enumerate(self.events):
            if n == name:
                del self.events[i]
                return body

    async def closed(self):
        try:
            while True:
                await self.pump(timeout=5)
        except websockets.ConnectionClosed:
            pass
        return self.ws.close_code


def bearer(name):
    return f"Bearer {CFG['token_' + name]}"


# --- reconnection with queued events -------------------------------------------

async def reconnect_with_token():
    a = await Client.connect(bearer("a"))
    b = await Client.connect(bearer("b"))
    await a.call("/test/join", {"room": "r"})
    await b.call("/test/join", {"room": "r"})
    await a.call("/test/bounce", {"code": 1001})
    code = await a.closed()
    check(code == 1001, f"bounce closed with {code}")
    notice = [body for n, body in a.events if n == "connect.disconnect-notification"]
    check(notice and notice[0]["reconnectable"] is True, f"no reconnectable notification: {notice}")
    token = notice[0]["reconnectionToken"]
    check(len(token) >= 40, "implausible reconnection token")
    # While alice is away: to her session, to her group, to her session.
    for name in ("q.0", "q.1", "q.2"):
        if name == "q.1":
            r = await b.call("/test/push-group", {"room": "r", "name": name})
            check(r["targets"] == 2, f"group push reached {r['targets']}")
        else:
            r = await b.call("/test/push", {"to": CFG["session_a"], "name": name})
            check(r["error"] == "", f"push to a parked session failed: {r['error']}")
    # Alice saw the close before the server finished it: events pushed in
    # between are held by the closing connection and move to the parked
    # queue when the close completes, so wait for that (bounded).
    deadline = time.monotonic() + 5
    while True:
        stats = await b.call("/test/stats")
        if stats["parked_sessions"] == 1 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.01)
    check(stats["parked_sessions"] == 1 and stats["queued_events"] == 3, f"stats while parked: {stats}")

    back = await Client.connect(f"Reconnect {token}")
    m = back.manifests()[0]
    check(m["reason"] == "session_reconnected", f"manifest reason {m['reason']}")
    check(m["sessionId"] == CFG["session_a"], "another session came back")
    await back.wait(lambda: len(back.names()) >= 3, "queued events")
    check(back.names()[:3] == ["q.0", "q.1", "q.2"], f"queued events {back.names()}")
    # Nothing before the manifest: the manifest was the first frame.
    check(back.events[0][0] == "connect.capability-manifest", "an event overtook the manifest")
    # Still in its group.
    r = await b.call("/test/push-group", {"room": "r", "name": "after"})
    check(r["targets"] == 2, "the resumed session left its group")
    await back.event("after")
    stats = await b.call("/test/stats")
    check(stats["sessions_resumed"] >= 1 and stats["queued_events_delivered"] >= 3, f"stats after: {stats}")
    await back.ws.close()
    await b.ws.close()


async def reconnect_after_drop():
    c = await Client.connect(bearer("c"))
    d = await Client.connect(bearer("d"))
    c.ws.transport.abort()  # the network fails: no close frame
    deadline = time.monotonic() + 5
    while True:
        stats = await d.call("/test/stats")
        if stats["parked_sessions"] >= 1:
            break
        check(time.monotonic() < deadline, "the dropped session was not parked")
        await asyncio.sleep(0.02)
    for i in range(3):
        r = await d.call("/test/push", {"to": CFG["session_c"], "name": f"drop.{i}"})
        check(r["error"] == "", r["error"])
    again = await Client.connect(bearer("c"))
    await again.wait(lambda: len(again.names()) >= 3, "queued events after a drop")
    check(again.names()[:3] == ["drop.0", "drop.1", "drop.2"], f"events {again.names()}")
    check(again.manifests()[0]["reason"] == "session_reconnected", "reason")
    await again.ws.close()
    await d.ws.close()


# --- server-to-client requests ----------------------------------------------------

async def client_requests():
    a = await Client.connect(bearer("a"))
    observer = await Client.connect(bearer("b"))
    await observer.call("/test/join", {"room": "observers"})

    r = await a.call("/test/ask", {"payload": '{"q":1}', "timeout_ms": 3000})
    check(r["error"] == "", r["error"])
    await a.wait(lambda: a.requests, "a server-to-client request")
    req = a.requests.pop(0)
    check(req["flags"] == 0 and req["channel"] == 42 and req["sequence"] == 0, f"request header {req}")
    check(req["payload"] == b'{"q":1}', f"request payload {req['payload']}")
    await a.ws.send(response(0, req["channel"], req["sequence"], req["id"], 0, '{"a":2}'))
    outcome = await a.event("test.asked")
    check(outcome["error"] == "" and outcome["code"] == 0 and outcome["payload"] == '{"a":2}', f"outcome {outcome}")

    # An error code from the client is passed on; its payload is not.
    await a.call("/test/ask", {"payload": "{}", "timeout_ms": 3000})
    await a.wait(lambda: a.requests, "a second request")
    req = a.requests.pop(0)
    await a.ws.send(response(0, req["channel"], req["sequence"], req["id"], 51, "ignored"))
    outcome = await a.event("test.asked")
    check(outcome["code"] == 51 and outcome["payload"] == "", f"error outcome {outcome}")

    # No answer: a timeout; the late answer is dropped and the connection goes on.
    await a.call("/test/ask", {"payload": "{}", "timeout_ms": 150})
    await a.wait(lambda: a.requests, "a third request")
    req = a.requests.pop(0)
    outcome = await a.event("test.asked")
    check("in time" in outcome["error"], f"timeout outcome {outcome}")
    await a.ws.send(response(0, req["channel"], req["sequence"], req["id"], 0, "{}"))
    # Foreign and malformed-but-parsable responses too.
    await a.ws.send(response(0, 0, 0, 0x1234, 0, "{}"))
    check(await a.call("/echo", {"still": "alive"}) == {"still": "alive"}, "echo after stray responses")
    stats = await a.call("/test/stats")
    check(stats["responses_unmatched"] >= 2 and stats["client_calls_timed_out"] >= 1, f"stats {stats}")

    # The client leaves with a request pending: the host hears about it.
    await a.call("/test/ask", {"payload": "{}", "timeout_ms": 5000})
    await a.wait(lambda: a.requests, "a fourth request")
    await a.ws.close()
    # The observer saw every outcome; the last one is the disconnect's.
    await observer.wait(lambda: any("closed before the client answered" in body.get("error", "")
                                    for n, body in observer.events if n == "test.asked"),
                        "the disconnect outcome")
    await observer.ws.close()


# --- peers ---------------------------------------------------------------------------

async def peers():
    a = await Client.connect(bearer("a"))
    b = await Client.connect(bearer("b"))
    c = await Client.connect(bearer("c"))
    pa, pb = a.manifests()[0]["peerGuid"], b.manifests()[0]["peerGuid"]
    check(pa != pb, "peer GUIDs must differ per connection")
    check(pa[14] == "4", f"peer GUID {pa} is not version 4")

    frame = request(guid_wire(pb), '{"hi":"bob"}', flags=CLIENT, channel=3, sequence=9, message_id=0x0102030405060708)
    ack = await a.send_and_wait(frame, 0x0102030405060708)
    check(ack["code"] == 0 and ack["channel"] == 3 and ack["sequence"] == 9, f"ack {ack}")
    body = json.loads(ack["payload"])
    check(body == {"Status": "delivered", "TargetPeerGuid": pb, "OriginalMessageId": 0x0102030405060708},
          f"ack body {body}")
    await b.wait(lambda: b.peer, "the peer frame")
    check(b.peer.pop(0) == frame, "the peer frame was not forwarded unchanged")

    # Unknown and nil peers: 31.
    r = await a.send_and_wait(request(b"\x11" * 16, "{}", flags=CLIENT, message_id=77), 77)
    check(r["code"] == 31, f"unknown peer answered {r['code']}")
    r = await a.send_and_wait(request(bytes(16), "{}", flags=CLIENT, message_id=78), 78)
    check(r["code"] == 31, f"nil peer answered {r['code']}")

    # Event-flagged: delivered, not acknowledged.
    await a.ws.send(request(guid_wire(pb), "{}", flags=CLIENT | EVENT, message_id=79))
    await b.wait(lambda: b.peer, "the event-flagged peer frame")
    b.peer.clear()

    # Broadcast: every other connection, no acknowledgement.
    frame = request(BROADCAST, '{"all":1}', flags=CLIENT, message_id=80)
    await a.ws.send(frame)
    await b.wait(lambda: b.peer, "broadcast at b")
    await c.wait(lambda: c.peer, "broadcast at c")
    check(b.peer[0] == frame and c.peer[0] == frame, "broadcast not forwarded unchanged")
    check(await a.call("/echo", {"after": "broadcast"}) == {"after": "broadcast"}, "echo")
    check(79 not in a.replies and 80 not in a.replies, "an unacknowledged frame was acknowledged")
    check(not a.peer, "the broadcaster got its own broadcast")

    # After b leaves, its peer GUID is unknown.
    await b.ws.close()
    await asyncio.sleep(0.1)
    r = await a.send_and_wait(request(guid_wire(pb), "{}", flags=CLIENT, message_id=81), 81)
    check(r["code"] == 31, f"departed peer answered {r['code']}")
    await a.ws.close()
    await c.ws.close()

    # External mode (the default): no peer GUID, every Client-flagged frame 40.
    e = await Client.connect(bearer("d"), url=EXTERNAL_URL)
    check("peerGuid" not in e.manifests()[0], "External mode must not announce a peer GUID")
    r = await e.send_and_wait(request(guid_wire(pa), "{}", flags=CLIENT, message_id=90), 90)
    check(r["code"] == 40, f"peer message in External mode answered {r['code']}")
    r = await e.send_and_wait(request(BROADCAST, "{}", flags=CLIENT, message_id=91), 91)
    check(r["code"] == 40, f"broadcast in External mode answered {r['code']}")
    await e.ws.close()


async def main():
    failed = False
    for scenario in (reconnect_with_token, reconnect_after_drop, client_requests, peers):
        started = time.monotonic()
        try:
            await scenario()
        except Exception as e:  # noqa: BLE001 - report which scenario failed
            print(f"FAILED {scenario.__name__}: {type(e).__name__}: {e}")
            failed = True
            continue
        print(f"ok {scenario.__name__} ({time.monotonic() - started:.2f} s)")
    if failed:
        sys.exit(1)
    print("ALL SCENARIOS PASSED")


asyncio.run(main())
