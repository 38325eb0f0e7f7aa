"""Known secret values, and their removal from every string that is stored, logged, exported or shown.

Redacting by key name (config.redact_secrets) and URL shape (config.redact_url) cannot catch a secret that
arrives inside free text, e.g. a gateway whose error body echoes the request's Authorization header, or a
server that quotes the first characters of a rejected key. So every secret value the process reads (the keys
from `api_key_env` and the default key variables, a `base_url`'s password) is registered here the moment it is
read, together with the forms it travels in (the Basic credentials' base64, the percent-encoded password), and
the sinks (ProviderError, the store, the CLI's messages) pass their text through `redact`.

Two strengths: `redact` removes every registered value and, in short diagnostic text, any run of eight or more
characters taken from a value (an echoed key prefix such as "sk-proj-AbC1…"); `redact_values` only removes
whole values, for long texts such as answers, where a common prefix must not be blanked out.
"""

from __future__ import annotations

import base64
import threading
import urllib.parse

REDACTED = "***"
# Values shorter than this are not registered: blanking every "1234" in a message would hide more than it protects,
# and no real credential is that short.
_MIN_SECRET = 8
# A run of this many characters of a secret counts as a leak in diagnostic text.
_FRAGMENT = 8
# Fragment search costs a set look-up per character; texts longer than this get whole-value redaction only.
_FRAGMENT_SCAN_LIMIT = 200_000

_lock = threading.Lock()
_values: frozenset[str] = frozenset()
_fragments: frozenset[str] = frozenset()


def register_secret(value: str | None) -> None:
    """Remember `value` (and its percent-encoded form) as a secret for the rest of the process."""
    if not value or len(value.strip()) < _MIN_SECRET:
        return
    forms = {value, value.strip(), urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)}
    _add(forms)


def register_basic_auth(user: str, password: str | None) -> None:
    """A `user:password@` pair: the password itself and the base64 of the Basic credentials built from it."""
    if not password:
        return
    register_secret(password)
    for encoding in ("latin-1", "utf-8"):
        try:
            raw = f"{user}:{password}".encode(encoding)
        except UnicodeEncodeError:
            continue
        _add({base64.b64encode(raw).decode("ascii")})


def _add(forms: set[str]) -> None:
    global _values, _fragments
    forms = {f for f in forms if len(f) >= _MIN_SECRET}
    with _lock:
        values = _values | forms
        fragments = set(_fragments)
        for form in forms:
            fragments.update(form[i : i + _FRAGMENT] for i in range(len(form) - _FRAGMENT + 1))
        _values = frozenset(values)
        _fragments = frozenset(fragments)


def known_secrets() -> frozenset[str]:
    return _values


def redact_values(text: str) -> str:
    """`text` without any registered secret value (whole values only; for long texts such as answers)."""
    if not _values or not text:
        return text
    for value in sorted(_values, key=len, reverse=True):  # a value holding another goes whole
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def redact(text: str) -> str:
    """`text` without any registered secret value, nor any run of eight or more characters of one."""
    if not _values or not text:
        return text
    text = redact_values(text)
    if len(text) > _FRAGMENT_SCAN_LIMIT:
        return text
    fragments = _fragments
    covered = bytearray(len(text))
    found = False
    for i in range(len(text) - _FRAGMENT + 1):
        if text[i : i + _FRAGMENT] in fragments:
            covered[i : i + _FRAGMENT] = b"\x01" * _FRAGMENT
            found = True
    if not found:
        return text
    out, i = [], 0
    while i < len(text):
        if covered[i]:
            while i < len(text) and covered[i]:
                i += 1
            out.append(REDACTED)
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def redact_tree(value):
    """A copy of a JSON-like value (dicts, lists, strings) with `redact` applied to every string in it, keys too."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_tree(k): redact_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_tree(v) for v in value]
    return value


def forget_all() -> None:
    """Clear the registry (tests only)."""
    global _values, _fragments
    with _lock:
        _values, _fragments = frozenset(), frozenset()
