#!/usr/bin/python3
"""The cluster demo's clients (started by examples/cluster/run.sh).

Python websockets (Debian: python3-websockets) and PyJWT (python3-jwt): the
tokens are HS256 JWTs signed with the demo secret of cluster_node.
"""
import argparse
import asyncio
import json
import os
import signal
import struct
import sys
import time
import uuid

import jwt
import websockets

SECRET = "gatehouse-cluster-demo-secret-do-not-use"
RESPONSE = 0x40


def token(account, permissions=()):
    now = int(time.time())
    return jwt.encode({"sub": account, "session_key": str(uuid.uuid4()), "roles": ["player"],
                       "permissions": list(permissions), "iat": now, "exp": now + 3600}, SECRET, algorithm="HS256")


class Player:
    def __init__(self, name, ws):
        self.name, self.ws = name, ws
        self.apis, self.replies, self.events = {}, {}, []
        self.next_id = 0

    @classmethod
    async def connect(cls, name, port, bearer):
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/connect",
                                      extra_headers={"Authorization": f"Bearer {bearer}"})
        player = cls(name, ws)
        while not player.apis:
            await player.pump()
        return player

    async def pump(self, timeout=5.0):
        frame = await asyncio.wait_for(self.ws.recv(), timeout)
        if frame[0] & RESPONSE:
            _, _, _, message_id, code = struct.unpack(">BHIQB", frame[:16])
            self.replies[message_id] = (code, frame[16:])
            return
        body = json.loads(frame[31:])
        if body["eventName"] == "connect.capability-manifest":
            self.apis = {api["endpoint"]: api["serviceId"] for api in body["availableApis"]}
            self.session_id = body["sessionId"]
        else:
            self.events.append(body)

    async def call(self, path, body):
        self.next_id += 1
        guid = bytes.fromhex(self.apis[path].replace("-", ""))
        await self.ws.send(struct.pack(">BHI16sQ", 0, 0, 0, guid, self.next_id) + json.dumps(body).encode())
        while self.next_id not in self.replies:
            await self.pump()
        code, payload = self.replies.pop(self.next_id)
        return code, payload

    async def hear(self, text, timeout):
        """Waits for chat.message `text`; returns the event or None."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event.get("eventName") == "chat.message" and event.get("text") == text:
                    self.events.remove(event)
                    return event
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                await self.pump(timeout=left)
            except asyncio.TimeoutError:
                return None


def expect(check, condition, message):
    if condition:
        return
    print(f"UNEXPECTED: {message}")
    if check:
        sys.exit(1)


async def main(args):
    alice = await Player.connect("alice", args.port_a, token("alice"))
    bob = await Player.connect("bob", args.port_b, token("bob"))
    carol_token = token("carol")
    carol = await Player.connect("carol", args.port_c, carol_token)
    admin = await Player.connect("admin", args.port_c, token("admin", ["admin:revoke"]))
    for player, node in ((alice, "a"), (bob, "b"), (carol, "c")):
        code, _ = await player.call("/chat/join", {"room": "lobby"})
        expect(args.check, code == 0, f"{player.name} could not join")
        print(f"{player.name} is on node {node} and joined the lobby")

    # Group declarations reach Redis asynchronously: the first line is
    # repeated until both listeners on the other nodes have it.
    heard = {}
    for attempt in range(50):
        await alice.call("/chat/say", {"room": "lobby", "text": f"hello from node a ({attempt})"})
        for listener in (bob, carol):
            if listener.name not in heard:
                event = await listener.hear(f"hello from node a ({attempt})", 0.1)
                if event:
                    heard[listener.name] = event
        if len(heard) == 2:
            break
    expect(args.check, len(heard) == 2, f"the room did not reach both other nodes: {sorted(heard)}")
    for name, event in sorted(heard.items()):
        print(f"{name} heard alice: \"{event['text']}\" (pushed by node {event['viaNode']})")
    await alice.call("/chat/say", {"room": "lobby", "text": "once"})
    for listener in (bob, carol):
        expect(args.check, await listener.hear("once", 3) is not None, f"{listener.name} missed a line")
        expect(args.check, await listener.hear("once", 0.2) is None, f"{listener.name} heard a line twice")

    # Revocation on node c closes bob's connection on node b.
    started = time.monotonic()
    code, payload = await admin.call("/admin/revoke", {"account": "bob"})
    expect(args.check, code == 0, f"revoke: code {code}")
    try:
        while True:
            await bob.pump(timeout=3)
    except websockets.ConnectionClosed:
        pass
    elapsed = (time.monotonic() - started) * 1000
    expect(args.check, bob.ws.close_code == 4002, f"bob's close code {bob.ws.close_code}")
    print(f"admin on node c revoked bob: his connection on node b closed with {bob.ws.close_code} "
          f"after {elapsed:.1f} ms")

    # Node c dies; carol carries on through node b with the same token.
    os.kill(args.pid_c, signal.SIGKILL)
    try:
        while True:
            await carol.pump(timeout=3)
    except websockets.ConnectionClosed:
        pass
    print(f"node c killed: carol's connection ended ({carol.ws.close_code})")
    # Once node c's heartbeat has lapsed (1 s), nobody holds carol's session:
    # a whisper to it waits in Redis for her.
    await asyncio.sleep(1.5)
    code, _ = await alice.call("/chat/whisper", {"session": carol.session_id, "text": "while you were away"})
    expect(args.check, code == 0, f"whisper: code {code}")
    carol = await Player.connect("carol", args.port_b, carol_token)
    whisper = None
    for _ in range(50):
        whisper = next((e for e in carol.events if e.get("eventName") == "chat.whisper"), None)
        if whisper:
            break
        try:
            await carol.pump(timeout=0.1)
        except asyncio.TimeoutError:
            pass
    expect(args.check, whisper is not None and whisper["text"] == "while you were away",
           "carol did not get the whisper queued in Redis while no node held her session")
    if whisper:
        print(f"carol reconnected to node b and got the whisper alice sent while node c was dead: "
              f"\"{whisper['text']}\"")
    code, _ = await carol.call("/chat/join", {"room": "lobby"})
    expect(args.check, code == 0, "carol could not rejoin on node b")
    heard = None
    for attempt in range(50):
        await alice.call("/chat/say", {"room": "lobby", "text": f"carol, still there? ({attempt})"})
        heard = await carol.hear(f"carol, still there? ({attempt})", 0.1)
        if heard:
            break
    expect(args.check, heard is not None, "carol does not hear the room after moving to node b")
    print(f"carol reconnected to node b and hears alice again: \"{heard['text']}\"")
    for player in (alice, carol, admin):
        await player.ws.close()
    print("cluster demo: all done")


parser = argparse.ArgumentParser()
for flag in ("--port-a", "--port-b", "--port-c", "--pid-c"):
    parser.add_argument(flag, type=int, required=True)
parser.add_argument("--check", action="store_true")
asyncio.run(main(parser.parse_args()))
