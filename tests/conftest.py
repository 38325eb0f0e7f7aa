from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from fake_anthropic import AnthropicFaults, FakeAnthropic  # noqa: E402
from fake_server import FakeServer, Faults  # noqa: E402


@pytest.fixture(autouse=True)
def _forget_secrets():
    """Secrets are registered for the rest of a process (arena_eval.redaction): each test starts with none, so
    that a test key made of words ("sk-redirect-test-key") cannot blank those words in another test's messages."""
    yield
    from arena_eval.redaction import forget_all

    forget_all()


@pytest.fixture
def fake_server():
    servers = []

    def start(**faults) -> FakeServer:
        server = FakeServer(Faults(**faults)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def fake_anthropic():
    """Start loopback fake Anthropic servers (fake_anthropic.py) with the given faults; stopped after the test."""
    servers = []

    def start(**faults) -> FakeAnthropic:
        server = FakeAnthropic(AnthropicFaults(**faults)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def write_questions(path: Path, n: int) -> Path:
    with path.open("w") as handle:
        for i in range(n):
            record = {"question_id": f"q{i:04d}", "category": "cat" + str(i % 3), "turns": [{"content": f"Question number {i}?" + " pad" * (i % 7)}]}
            handle.write(json.dumps(record) + "\n")
    return path


def write_config(folder: Path, base_url: str, *, n_questions: int = 10, contestants: list[dict] | None = None,
                 judge: dict | None = None, **top) -> Path:
    """A run config against the fake server; fast retries so fault tests stay quick."""
    fast = {"provider": "openai", "base_url": base_url, "retry_initial_s": 0.01, "retry_max_s": 0.05, "max_attempts": 8}
    contestants = contestants or [{"name": "base", "model": "model-base"}, {"name": "c1", "model": "model-c1"}]
    data = {
        "name": "t",
        "questions": str(write_questions(folder / "questions.jsonl", n_questions)),
        "output": str(folder / "out"),
        "baseline": contestants[0]["name"],
        "judge": {**fast, "model": "judge-model", "concurrency": 16, **(judge or {})},
        "contestants": [{**fast, **c} for c in contestants],
        "rating": {"rounds": 50, "seed": 1},
        **top,
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
