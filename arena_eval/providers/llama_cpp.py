"""A GGUF model served by llama.cpp's OpenAI-compatible server, run in process through xllamacpp.

Contestants (and a judge) that use the same model file with the same server options share one server:
loading the model once is faster, and a small machine does not hold several copies.
"""

from __future__ import annotations

import asyncio
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import EndpointConfig
from ..errors import ConfigError
from ..resources import resolve_package_model
from .openai_compat import OpenAIProvider


def resolve_model_path(model_path: str, base_dir: str | Path = ".") -> Path:
    if model_path.startswith("package:"):
        try:
            return resolve_package_model(model_path)
        except FileNotFoundError as exc:
            raise ConfigError(f"model_path {model_path!r}: {exc}") from None
    path = Path(model_path).expanduser()
    if not path.is_absolute():
        path = Path(base_dir) / path
    if not path.is_file():
        raise ConfigError(f"model_path {model_path!r}: no GGUF file at {path}; point model_path at a .gguf file")
    return path


@dataclass
class _Server:
    handle: Any
    base_url: str
    users: int = 0


_servers: dict[tuple, _Server] = {}
_servers_lock = asyncio.Lock()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_server(path: Path, config: EndpointConfig) -> _Server:
    try:
        import xllamacpp
    except ImportError:
        raise ConfigError(
            "provider llama_cpp needs the xllamacpp package: pip install 'arena-eval[local]' (or pip install xllamacpp)"
        ) from None
    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.hostnames = ["127.0.0.1"]
    params.port = _free_port()
    params.n_ctx = config.n_ctx * config.n_parallel  # n_ctx is per request; the server splits it across slots
    params.n_parallel = config.n_parallel
    params.cpuparams.n_threads = config.n_threads or max(1, os.cpu_count() or 1)
    params.cpuparams_batch.n_threads = params.cpuparams.n_threads
    params.verbosity = -1
    server = xllamacpp.Server(params)
    return _Server(handle=server, base_url=f"http://127.0.0.1:{params.port}/v1")


class LlamaCppProvider(OpenAIProvider):
    name = "llama_cpp"

    def __init__(self, config: EndpointConfig, base_dir: str | Path = "."):
        super().__init__(config)
        self.model_file = resolve_model_path(config.model_path or "", base_dir)
        self._key = (str(self.model_file), config.n_ctx, config.n_parallel, config.n_threads)
        self.endpoint = f"llama.cpp server for {self.model_file.name}"

    def api_key(self) -> str:
        return "not-needed"

    async def start(self) -> None:
        if self.started:
            return
        async with _servers_lock:
            server = _servers.get(self._key)
            if server is None:
                server = await asyncio.to_thread(_start_server, self.model_file, self.config)
                _servers[self._key] = server
            server.users += 1
        self.base_url = server.base_url
        self.endpoint = f"{server.base_url} (llama.cpp, {self.model_file.name})"
        await super().start()

    async def close(self) -> None:
        if not self.started:
            return
        await super().close()
        async with _servers_lock:
            server = _servers.get(self._key)
            if server is not None:
                server.users -= 1
                if server.users <= 0:
                    del _servers[self._key]
                    # Dropping the last reference stops the server and frees the model.
                    await asyncio.to_thread(_drop, server)

    def server_pid(self) -> tuple[int, str]:
        """The process serving the model and what it is: llama.cpp runs inside this process (xllamacpp), so its
        memory is this process's, arena-eval's own included."""
        return os.getpid(), "rss-peak of this process (llama.cpp in process)"

    def constrain_to(self, choices: list[str]) -> dict[str, Any]:
        alternatives = " | ".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in choices)
        return {"extra_body": {"grammar": f"root ::= {alternatives}"}}


def _drop(server: _Server) -> None:
    server.handle = None
