from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

# pytest-xdist gives its workers COLUMNS=80 (the width of its own report); the tests of table layout expect what
# a run whose output is not a terminal gets (cli/render.py: 200 characters unless COLUMNS says otherwise).
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ.pop("COLUMNS", None)

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


# --- the slow tier, marked by what a test starts ----------------------------------------------------------------

# Names whose use in a test's code means a new process or a browser: a CLI run (`sys.executable -m
# arena_eval.cli`), any subprocess, the browser. Such a test takes a second or more, so it is `slow` (left out of
# `pytest -m "not slow"`) whether or not it says so.
_STARTS_A_PROCESS = {"subprocess", "create_subprocess_exec", "create_subprocess_shell", "webdriver", "executable"}
_TESTS = Path(__file__).resolve().parent


def _code_objects(code):
    yield code
    for const in code.co_consts:
        if hasattr(const, "co_names"):  # nested functions, lambdas, comprehensions
            yield from _code_objects(const)


def _starts_a_process(function, seen: set) -> bool:
    """Whether `function`, or a function of the test suite it names (helpers, fixtures' bodies), uses one of
    _STARTS_A_PROCESS. Read from the compiled code (names, not text), so comments and strings do not count."""
    function = getattr(function, "__wrapped__", function)
    code = getattr(function, "__code__", None)
    if code is None or code in seen:
        return False
    seen.add(code)
    module_globals = getattr(function, "__globals__", {})
    for inner in _code_objects(code):
        if _STARTS_A_PROCESS & set(inner.co_names):
            return True
        for name in inner.co_names:
            helper = module_globals.get(name)
            helper_file = getattr(getattr(helper, "__code__", None), "co_filename", "")
            if helper_file and Path(helper_file).resolve().parent == _TESTS and _starts_a_process(helper, seen):
                return True
    return False


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("slow") or not hasattr(item, "obj"):
            continue
        seen: set = set()
        fixtures = getattr(item, "_fixtureinfo", None)
        definitions = fixtures.name2fixturedefs.values() if fixtures else ()
        if _starts_a_process(item.obj, seen) or any(_starts_a_process(d[-1].func, seen) for d in definitions if d):
            item.add_marker(pytest.mark.slow)
        elif "litellm_imported" in getattr(item, "fixturenames", ()):  # importing litellm alone takes ~8 s here
            item.add_marker(pytest.mark.slow)
