"""A stand-in for the `vllm` executable: `fake_vllm.py serve MODEL --host H --port P [other vllm flags]`.

It serves the fake OpenAI-compatible chat API of fake_server.py plus vLLM's `GET /health`, and behaves like
`vllm serve` where arena-eval relies on it: nothing listens until the (simulated) model is loaded, a startup
error ends the process with a message and exit code 1, SIGTERM shuts it down cleanly, and requests to /v1
need the key when VLLM_API_KEY or --api-key is set. Controlled through the environment:

- FAKE_VLLM_ARGV_FILE: where to write {"argv", "pid", "api_key"} as JSON, for tests to check the command;
- FAKE_VLLM_STARTUP_S: seconds of "loading the model" before it listens;
- FAKE_VLLM_FAIL=1: print a startup error like vLLM's and exit 1;
- FAKE_VLLM_CHILD_PID_FILE: start a long-sleeping child (like vLLM's engine process) that is never told to
  stop, and write its pid there; only stopping the whole process group ends it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).parent))

from fake_server import FakeServer  # noqa: E402


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="vllm")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("model")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-key")
    args, _unknown = parser.parse_known_args(argv)  # every other vllm flag is accepted and ignored
    return args


def app(api_key: str | None) -> web.Application:
    application = FakeServer().app()

    async def health(request: web.Request) -> web.Response:
        return web.Response(status=200)

    @web.middleware
    async def require_key(request: web.Request, handler):
        if api_key and request.path.startswith("/v1") and request.headers.get("Authorization") != f"Bearer {api_key}":
            return web.json_response({"error": "Unauthorized"}, status=401)
        return await handler(request)

    application.router.add_get("/health", health)
    application.middlewares.append(require_key)
    return application


async def serve(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print(f"INFO fake vllm: loading {args.model}", flush=True)
    try:
        await asyncio.wait_for(stop.wait(), float(os.environ.get("FAKE_VLLM_STARTUP_S", "0")))
        print("INFO fake vllm: stopped while loading", flush=True)
        return 0
    except asyncio.TimeoutError:
        pass
    runner = web.AppRunner(app(args.api_key or os.environ.get("VLLM_API_KEY")), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, args.host, args.port).start()
    print(f"INFO fake vllm: serving on http://{args.host}:{args.port}", flush=True)
    await stop.wait()
    print("INFO fake vllm: shutting down", flush=True)
    await runner.cleanup()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if path := os.environ.get("FAKE_VLLM_ARGV_FILE"):
        record = {"argv": argv, "pid": os.getpid(), "api_key": os.environ.get("VLLM_API_KEY")}
        Path(path).write_text(json.dumps(record))
    args = parse(argv)
    if path := os.environ.get("FAKE_VLLM_CHILD_PID_FILE"):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        Path(path).write_text(str(child.pid))
    if os.environ.get("FAKE_VLLM_FAIL") == "1":
        print(f"INFO fake vllm: loading {args.model}", flush=True)
        print("RuntimeError: Failed to infer device type (fake vllm startup failure)", file=sys.stderr, flush=True)
        return 1
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
