"""A lean fake OpenAI-compatible chat server for benchmarks that need many requests a second on a small machine.

    python bench/lean_fake_server.py --port 0 [--latency 0.2]      # prints `PORT <n>` once listening

tests/fake_server.py (aiohttp, fault injection) spends roughly as much CPU per request as the client does, and
on a 2-core machine the two compete. This one speaks just enough HTTP/1.1 on a raw asyncio protocol: keep-alive
connections, one request at a time per connection (what the clients send), a body framed by Content-Length,
and a fixed-shape JSON reply. No faults and no streaming (`"stream": true` gets HTTP 400).

Replies: a request whose body contains the judge labels (`[[A>>B]]`) gets `... [[A>B]]`; any other request gets
a short answer with a running number. Usage is counted from the body size (about 4 bytes a token).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json

_JUDGE_MARK = b"[[A>>B]]"
_STREAM_MARK = b'"stream":true'
_counter = itertools.count(1)


def _reply(body: bytes) -> bytes:
    if _STREAM_MARK in body.replace(b" ", b""):
        return _http(400, b'{"error":{"message":"the lean fake server does not stream"}}')
    if _JUDGE_MARK in body:
        text = "Both answers were read carefully. My final verdict: [[A>B]]"
    else:
        text = f"Answer {next(_counter)} from the lean fake server: a short, plain reply."
    usage = {"prompt_tokens": len(body) // 4, "completion_tokens": len(text.split()), "total_tokens": 0}
    payload = {
        "id": "lean-1",
        "object": "chat.completion",
        "created": 0,
        "model": "lean",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": usage,
    }
    return _http(200, json.dumps(payload).encode())


def _http(status: int, payload: bytes) -> bytes:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n")
    return head.encode() + payload


class ChatProtocol(asyncio.Protocol):
    def __init__(self, latency: float):
        self.latency = latency
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            body = bytes(self.buffer[end + 4:total])
            del self.buffer[:total]
            method, _, rest = head.partition(" ")
            path = rest.split(" ", 1)[0]
            if method == "POST" and path.rstrip("/").endswith("/chat/completions"):
                reply = _reply(body)
            else:
                reply = _http(404, b'{"error":{"message":"only POST /v1/chat/completions"}}')
            if self.latency:
                asyncio.get_running_loop().call_later(self.latency, self._send, reply)
            else:
                self._send(reply)

    def _send(self, reply: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(reply)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before every reply")
    args = parser.parse_args()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: ChatProtocol(args.latency), "127.0.0.1", args.port, backlog=4096)
        print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
        await server.serve_forever()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
