"""A fake Zeus daemon (zeusd) on loopback or a Unix socket, speaking the protocol `zeus.utils.zeusd.ZeusdClient`
expects, with energy counters that advance at a known wattage.

Endpoints (all GET): `/discover` (devices, API groups, whether auth is required), `/auth/whoami` (the token's
scopes; 401 for a wrong one), `/gpu/get_cumulative_energy?gpu_ids=0,1` (mJ), `/cpu/get_cumulative_energy
?cpu_ids=0&cpu=true&dram=true` (µJ), `/gpu/get_power?gpu_ids=0` (mW), `/time`. Each counter is
`watts × seconds since start` on the daemon's monotonic clock, so a window of d seconds reads watts × d joules.

- `gpu_watts`, `cpu_watts`, `dram_watts`: index → watts (one entry per device the daemon serves);
- `token`: when set, auth is required and every read wants `Authorization: Bearer <token>`;
- `no_counter`: GPUs whose counter cannot be read (as on pre-Volta parts): their energy endpoint fails, their
  power is served;
- `socket_path`: serve on this Unix socket instead of a TCP port.
`stop()` kills it: the port (or socket) then refuses connections, as a dead daemon's would.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class DaemonSetup:
    gpu_watts: dict[int, float] = field(default_factory=lambda: {0: 100.0})
    cpu_watts: dict[int, float] = field(default_factory=dict)
    dram_watts: dict[int, float] = field(default_factory=dict)
    gpu_names: dict[int, str] = field(default_factory=dict)
    token: str | None = None
    no_counter: set[int] = field(default_factory=set)
    socket_path: str | None = None


class FakeZeusd:
    def __init__(self, setup: DaemonSetup | None = None):
        self.setup = setup or DaemonSetup()
        self.t0 = time.monotonic()
        self.paths = Counter()  # request path → requests received
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # --- the counters --------------------------------------------------------------------------------------

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def joules(self, watts: float) -> float:
        return watts * self.elapsed()

    # --- HTTP ----------------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._count, self._auth])
        app.router.add_get("/discover", self.discover)
        app.router.add_get("/auth/whoami", self.whoami)
        app.router.add_get("/gpu/get_cumulative_energy", self.gpu_energy)
        app.router.add_get("/cpu/get_cumulative_energy", self.cpu_energy)
        app.router.add_get("/gpu/get_power", self.gpu_power)
        app.router.add_get("/time", self.now)
        return app

    @web.middleware
    async def _count(self, request: web.Request, handler):
        self.paths[request.path] += 1
        return await handler(request)

    @web.middleware
    async def _auth(self, request: web.Request, handler):
        if self.setup.token and request.path != "/discover":
            if request.headers.get("Authorization") != f"Bearer {self.setup.token}":
                return web.Response(status=401, text="invalid token")  # echoes nothing of what it was sent
        return await handler(request)

    async def discover(self, request: web.Request) -> web.Response:
        s = self.setup
        return web.json_response({
            "gpus": [{"id": i, "name": s.gpu_names.get(i, "Fake GPU")} for i in sorted(s.gpu_watts)],
            "cpus": [{"id": i, "dram_available": i in s.dram_watts} for i in sorted(s.cpu_watts)],
            "enabled_api_groups": ["gpu-read", "cpu-read"],
            "auth_required": bool(s.token),
        })

    async def whoami(self, request: web.Request) -> web.Response:
        return web.json_response({"sub": "arena-eval-test", "scopes": ["gpu-read", "cpu-read"], "exp": None})

    @staticmethod
    def _ids(request: web.Request, key: str, default: list[int]) -> list[int]:
        value = request.query.get(key)
        return [int(i) for i in value.split(",") if i] if value else default

    async def gpu_energy(self, request: web.Request) -> web.Response:
        ids = self._ids(request, "gpu_ids", sorted(self.setup.gpu_watts))
        unknown = [i for i in ids if i not in self.setup.gpu_watts]
        if unknown:
            return web.Response(status=400, text=f"unknown GPU {unknown}")
        if any(i in self.setup.no_counter for i in ids):
            return web.Response(status=500, text="NVML: Not Supported")
        return web.json_response({str(i): {"energy_mj": int(self.joules(self.setup.gpu_watts[i]) * 1e3)}
                                  for i in ids})

    async def cpu_energy(self, request: web.Request) -> web.Response:
        ids = self._ids(request, "cpu_ids", sorted(self.setup.cpu_watts))
        reply = {}
        for i in ids:
            if i not in self.setup.cpu_watts:
                return web.Response(status=400, text=f"unknown CPU {i}")
            dram = self.setup.dram_watts.get(i)
            reply[str(i)] = {
                "cpu_energy_uj": int(self.joules(self.setup.cpu_watts[i]) * 1e6)
                if request.query.get("cpu", "true") == "true" else None,
                "dram_energy_uj": int(self.joules(dram) * 1e6)
                if dram is not None and request.query.get("dram", "true") == "true" else None,
            }
        return web.json_response(reply)

    async def gpu_power(self, request: web.Request) -> web.Response:
        ids = self._ids(request, "gpu_ids", sorted(self.setup.gpu_watts))
        return web.json_response({"timestamp_ms": int(time.time() * 1000),
                                  "power_mw": {str(i): int(self.setup.gpu_watts[i] * 1e3) for i in ids}})

    async def now(self, request: web.Request) -> web.Response:
        return web.json_response({"timestamp_ms": int(time.time() * 1000)})

    # --- lifecycle in a background thread -------------------------------------------------------------------

    def start(self) -> FakeZeusd:
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            runner = web.AppRunner(self.app(), access_log=None)
            self._loop.run_until_complete(runner.setup())
            if self.setup.socket_path:
                site: web.BaseSite = web.UnixSite(runner, self.setup.socket_path)
            else:
                site = web.TCPSite(runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            if not self.setup.socket_path:
                self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake zeusd did not start")
        return self

    def stop(self) -> None:
        """Kill the daemon: its address refuses connections from now on. A second stop does nothing."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._loop.stop)
            assert self._thread is not None
            self._thread.join(10)

    @property
    def address(self) -> str:
        return f"unix://{self.setup.socket_path}" if self.setup.socket_path else f"http://127.0.0.1:{self.port}"
