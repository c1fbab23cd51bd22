#!/usr/bin/python3
"""A tour of the demo gateway with Python's websockets (Debian: python3-websockets).

    /usr/bin/python3 examples/game_gateway/demo_client.py --url ws://127.0.0.1:9000/connect --token <token>

Prints the capability manifest, calls echo and profile, joins the lobby chat,
says hello and prints the pushed chat events, and shows that the admin
endpoint is not offered to the demo token.
"""
import argparse
import asyncio
import json
import struct

import websockets

RESPONSE, EVENT = 0x40, 0x10


def request(guid_text, body, message_id, channel=0):
    guid = bytes.fromhex(guid_text.replace("-", ""))
    return struct.pack(">BHI16sQ", 0, channel, 0, guid, message_id) + json.dumps(body).encode()


async def main(url, token):
    async with websockets.connect(url, extra_headers={"Authorization": f"Bearer {token}"}) as ws:
        apis = {}
        pending = {}
        next_id = [1]

        async def receive():
            frame = await ws.recv()
            if frame[0] & RESPONSE:
                _, _, _, message_id, code = struct.unpack(">BHIQB", frame[:16])
                pending[message_id] = (code, frame[16:])
                return None
            body = json.loads(frame[31:])
            if body["eventName"] == "connect.capability-manifest":
                apis.clear()
                apis.update({api["endpoint"]: api["serviceId"] for api in body["availableApis"]})
                print(f"manifest ({body['reason']}), session {body['sessionId']}:")
                for api in body["availableApis"]:
                    print(f"  {api['endpoint']:<16} {api['serviceId']}  {api.get('description', '')}")
            else:
                print(f"event {body['eventName']}: {json.dumps(body)}")
            return body

        async def call(path, body):
            message_id = next_id[0]
            next_id[0] += 1
            await ws.send(request(apis[path], body, message_id))
            while message_id not in pending:
                await receive()
            code, payload = pending.pop(message_id)
            print(f"call {path} -> code {code} {payload.decode() if payload else ''}")

        while not apis:
            await receive()
        await call("/demo/echo", {"hello": "gatehouse"})
        await call("/profile/get", {})
        await call("/chat/join", {"room": "lobby"})
        await call("/chat/say", {"room": "lobby", "text": "hello, lobby"})
        while True:
            event = await asyncio.wait_for(receive(), 2)
            if event and event.get("eventName") == "chat.message":
                break
        print("/admin/announce offered:", "/admin/announce" in apis, "(the demo token lacks admin:broadcast)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="ws://127.0.0.1:9000/connect")
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    asyncio.run(main(args.url, args.token))
