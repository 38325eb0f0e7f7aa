"""A model served by vLLM: arena-eval starts `vllm serve` on a loopback port, waits until it is healthy,
talks to it through its OpenAI-compatible API and stops it (with its worker processes) afterwards.

vLLM is not a dependency: it pins its own torch, so it usually lives in its own environment and
`vllm_executable` points at it. Providers with identical server settings (say a contestant and the judge)
share one server, which is stopped when the last of them closes.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import signal
import socket
import tempfile
import weakref
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ..config import EndpointConfig
from ..errors import ArenaError, ConfigError
from ..records import Completion, Message
from .base import ProviderError
from .openai_compat import OpenAIProvider

STOP_GRACE_S = 20.0  # SIGTERM first; vLLM frees the GPU and stops its engine processes on a clean shutdown
_STRAGGLER_GRACE_S = 3.0
_LOG_TAIL_LINES = 20
_HEALTH_POLL_S = 0.25


def build_vllm_command(config: EndpointConfig, port: int) -> list[str]:
    """The `vllm serve` command line for `config` on `port`. The API key is never on it (see _server_env)."""
    command = [config.vllm_executable, "serve", config.model or "", "--host", "127.0.0.1", "--port", str(port)]
    if config.dtype is not None:
        command += ["--dtype", config.dtype]
    if config.quantization is not None:
        command += ["--quantization", config.quantization]
    if config.tensor_parallel_size != 1:
        command += ["--tensor-parallel-size", str(config.tensor_parallel_size)]
    if config.gpu_memory_utilization is not None:
        command += ["--gpu-memory-utilization", f"{config.gpu_memory_utilization:g}"]
    if config.max_model_len is not None:
        command += ["--max-model-len", str(config.max_model_len)]
    if config.seed is not None:
        command += ["--seed", str(config.seed)]
    # The name requests use is the configured model, whatever path or repo id it was loaded from.
    command += ["--served-model-name", config.model or "", *config.vllm_args]
    return command


def find_vllm_executable(config: EndpointConfig) -> str:
    found = shutil.which(os.path.expanduser(config.vllm_executable))
    if found is None:
        raise ConfigError(
            f"model {config.model!r} uses provider vllm, but the vllm executable {config.vllm_executable!r} "
            "was not found (vllm is not installed, or not on PATH). vLLM pins its own torch, so install it in an "
            "environment of its own: `python -m venv ~/vllm-env && ~/vllm-env/bin/pip install vllm`, then set "
            "`vllm_executable: ~/vllm-env/bin/vllm`. Or run `vllm serve` yourself and use `provider: openai` "
            "with `base_url: http://HOST:PORT/v1`."
        )
    return found


@dataclass
class _Server:
    process: asyncio.subprocess.Process
    base_url: str
    log_path: Path
    users: int = 0


@dataclass
class _Pool:
    """The servers of one event loop (an asyncio subprocess belongs to the loop that started it)."""

    servers: dict[tuple, _Server] = field(default_factory=dict)
    locks: defaultdict[tuple, asyncio.Lock] = field(default_factory=lambda: defaultdict(asyncio.Lock))


_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pool] = weakref.WeakKeyDictionary()
# Process groups started and not yet stopped: killed at interpreter exit so no GPU server outlives us.
_live_groups: set[int] = set()


def _pool() -> _Pool:
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is None:
        pool = _pools[loop] = _Pool()
    return pool


class VLLMProvider(OpenAIProvider):
    name = "vllm"

    def __init__(self, config: EndpointConfig):
        super().__init__(config)
        self.executable = find_vllm_executable(config)
        self.base_url = None  # known once the server runs
        self.endpoint = f"vLLM server for {config.model}"
        # Everything that makes two servers different; the port is chosen per server.
        self._key = (self.executable, *build_vllm_command(config, 0)[1:], config.api_key_env)
        self._server: _Server | None = None

    def api_key(self) -> str:
        if self.config.api_key_env:
            return super().api_key()  # the server is started with it, and requests carry it
        return "not-needed"

    def server_pid(self) -> tuple[int, str] | None:
        """The vLLM server's process (its API server; the GPU memory is NVML's to report) and what it is."""
        return (self._server.process.pid, "rss-peak of the vLLM server process") if self._server else None

    async def start(self) -> None:
        if self.started:
            return
        key = self.api_key()  # before a server that may take minutes to load
        if self._server is None:
            self._server = await _acquire(self._key, self.config, self.executable, key)
        self.base_url = self._server.base_url
        self.endpoint = f"{self._server.base_url} (vLLM, {self.config.model})"
        await super().start()

    async def close(self) -> None:
        await super().close()
        server, self._server = self._server, None
        if server is not None:
            await _release(self._key, server)

    async def complete(self, messages: list[Message], **overrides: Any) -> Completion:
        try:
            return await super().complete(messages, **overrides)
        except ProviderError:
            server = self._server
            if server is None or server.process.returncode is None:
                raise
            # A dead server answers nothing; retrying would only spend the retry budget.
            raise ProviderError(
                f"the vLLM server for {self.config.model} exited with code {server.process.returncode}; "
                f"{_log_tail(server.log_path)}",
                retryable=False,
            ) from None

    def constrain_to(self, choices: list[str]) -> dict[str, Any]:
        # vLLM's own constraint field. It was `guided_choice` up to v0.10.1; v0.10.2 introduced
        # `structured_outputs` and v0.12 removed `guided_choice`, which newer servers ignore without an error
        # (the output is then silently unconstrained). Servers older than v0.10.2 ignore this field instead.
        return {"extra_body": {"structured_outputs": {"choice": list(choices)}}}


# --- the server's lifecycle ------------------------------------------------------------------------------


async def _acquire(key: tuple, config: EndpointConfig, executable: str, api_key: str) -> _Server:
    pool = _pool()
    async with pool.locks[key]:
        server = pool.servers.get(key)
        if server is None or server.process.returncode is not None:
            server = await _start_server(config, executable, api_key)
            pool.servers[key] = server
        server.users += 1
        return server


async def _release(key: tuple, server: _Server) -> None:
    pool = _pool()
    async with pool.locks[key]:
        server.users -= 1
        if server.users > 0:
            return
        if pool.servers.get(key) is server:
            del pool.servers[key]
        died = server.process.returncode is not None
        await _stop(server.process)
        if not died:  # a crashed server's log is kept for the user; its path is in the errors
            shutil.rmtree(server.log_path.parent, ignore_errors=True)


async def _start_server(config: EndpointConfig, executable: str, api_key: str) -> _Server:
    port = _free_port()
    command = [executable, *build_vllm_command(config, port)[1:]]
    log_path = Path(tempfile.mkdtemp(prefix="arena-vllm-")) / "server.log"
    # A file, not a pipe: vLLM logs a lot while loading, and nobody has to drain a file.
    try:
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=_server_env(config, api_key),
                start_new_session=True,  # its own process group: stopping it reaches its engine workers too
            )
    except OSError as exc:
        shutil.rmtree(log_path.parent, ignore_errors=True)
        raise ArenaError(f"could not run {executable} for model {config.model!r}: {exc}") from None
    _live_groups.add(process.pid)
    try:
        await _wait_until_healthy(process, port, config, log_path)
    except BaseException:  # a timeout, a failure, or a cancelled run: never leave the server behind
        await asyncio.shield(_stop(process))
        raise
    return _Server(process=process, base_url=f"http://127.0.0.1:{port}/v1", log_path=log_path)


def _server_env(config: EndpointConfig, api_key: str) -> dict[str, str]:
    env = dict(os.environ)
    # The key goes through vLLM's environment variable rather than --api-key, which any local user could
    # read from the process list. A VLLM_API_KEY left over in the shell would lock our own client out.
    env.pop("VLLM_API_KEY", None)
    if config.api_key_env:
        env["VLLM_API_KEY"] = api_key
    return env


async def _wait_until_healthy(process: asyncio.subprocess.Process, port: int, config: EndpointConfig,
                              log_path: Path) -> None:
    url = f"http://127.0.0.1:{port}/health"
    exited = asyncio.ensure_future(process.wait())
    healthy = asyncio.ensure_future(_poll_health(url))
    try:
        done, _ = await asyncio.wait({exited, healthy}, timeout=config.startup_timeout_s,
                                     return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (exited, healthy):
            task.cancel()
        await asyncio.gather(exited, healthy, return_exceptions=True)
    if healthy in done and not healthy.cancelled() and healthy.exception() is None:
        return
    if exited in done:
        raise ArenaError(
            f"the vLLM server for {config.model} exited with code {process.returncode} before it became healthy; "
            f"{_log_tail(log_path)}"
        )
    raise ArenaError(
        f"the vLLM server for {config.model} was not healthy (GET {url}) within startup_timeout_s="
        f"{config.startup_timeout_s:g}s; raise startup_timeout_s if the model is large or still downloading. "
        f"{_log_tail(log_path)}"
    )


async def _poll_health(url: str) -> None:
    # trust_env=False: a proxy from the environment must not stand between us and loopback.
    async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
        while True:
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass  # not listening yet
            await asyncio.sleep(_HEALTH_POLL_S)


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM to the whole process group, SIGKILL after STOP_GRACE_S; then no member of the group is left."""
    group = process.pid
    if process.returncode is None:
        _signal_group(group, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE_S)
        except asyncio.TimeoutError:
            _signal_group(group, signal.SIGKILL)
            await process.wait()
    # Workers the server started may still be shutting down; they get a moment, then SIGKILL.
    for _ in range(int(_STRAGGLER_GRACE_S / 0.1)):
        if not _group_alive(group):
            break
        await asyncio.sleep(0.1)
    _signal_group(group, signal.SIGKILL)
    _live_groups.discard(group)


def _signal_group(group: int, signal_number: int) -> None:
    try:
        os.killpg(group, signal_number)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


@atexit.register
def _kill_leftovers() -> None:
    for group in list(_live_groups):
        _signal_group(group, signal.SIGKILL)


def _log_tail(log_path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        with log_path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return f"its log {log_path} could not be read"
    tail = text.splitlines()[-lines:]
    if not tail:
        return f"its log {log_path} is empty"
    return f"last lines of its log {log_path}:\n  " + "\n  ".join(tail)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
