"""The provider interface: a provider turns chat messages into a Completion or raises a ProviderError.

Retrying is not a provider's business (providers/retry.call_with_retries does it the same way for all); a provider
only says whether a failure is worth retrying and for how long the server asked us to wait.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

import yarl

from ..config import EndpointConfig, redact_url
from ..errors import ConfigError
from ..records import Completion, Message
from ..redaction import redact, register_basic_auth, register_secret

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
# Finish reasons that mean the provider refused to answer: an error, never an answer.
REFUSALS = frozenset({"content_filter", "refusal", "safety"})
# The derived reply size cap: room for the JSON around a reply plus 1 KiB per token it may hold (a streamed token
# travels as ~200 bytes of JSON; log probabilities take more).
REPLY_BASE_BYTES = 1024 * 1024
REPLY_BYTES_PER_TOKEN = 1024


def retry_after_from_headers(headers: Any) -> float | None:
    """Seconds a server asked us to wait (`retry-after-ms` or `retry-after` in seconds), if it said."""
    for name in ("retry-after-ms", "retry-after"):
        value = headers.get(name) if headers else None
        if value is None:
            continue
        try:
            seconds = float(value)
        except ValueError:
            continue  # an HTTP date; rare enough to fall back to our own backoff
        return seconds / 1000 if name == "retry-after-ms" else seconds
    return None


class ProviderError(Exception):
    def __init__(self, reason: str, *, retryable: bool, retry_after: float | None = None):
        # Reasons are stored and printed: never with a URL's password, a known key, or a piece of one in them (a
        # gateway may echo the request's Authorization header in its error body).
        reason = redact(redact_url(reason))
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
        # Which replica of an endpoint failed (its index in replicas.ReplicaSet), so that a retry goes elsewhere.
        self.replica: int | None = None


class Provider(Protocol):
    name: str
    #: Where requests go, for messages (never holds a key).
    endpoint: str

    async def start(self) -> None:
        """Acquire what the provider needs (a local server, a client). Called once before requests."""

    async def complete(self, messages: list[Message], **overrides: Any) -> Completion:
        """One chat request. `overrides` are extra request fields (e.g. a label constraint)."""

    def constrain_to(self, choices: list[str]) -> dict[str, Any]:
        """Request fields that restrict the output to exactly one of `choices`."""

    async def close(self) -> None:
        """Release what start() acquired."""


def choice_response_format(choices: list[str]) -> dict[str, Any]:
    """An OpenAI-style `response_format` whose JSON reply must hold one of `choices` as its verdict."""
    schema = {
        "type": "object",
        "properties": {"verdict": {"type": "string", "enum": choices}},
        "required": ["verdict"],
        "additionalProperties": False,
    }
    return {"response_format": {"type": "json_schema", "json_schema": {"name": "verdict", "schema": schema, "strict": True}}}


def estimate_tokens(text: str) -> int:
    """Rough token count (~4 characters a token) for providers that report no usage; always flagged."""
    return max(1, round(len(text) / 4)) if text else 0


def reply_byte_cap(config: EndpointConfig) -> int:
    """The most bytes of one reply a provider takes in: max_response_bytes, or derived from max_tokens."""
    if config.max_response_bytes is not None:
        return config.max_response_bytes
    return REPLY_BASE_BYTES + REPLY_BYTES_PER_TOKEN * config.max_tokens


def reply_text_bytes(completion: Completion) -> int:
    """The bytes of a reply's text and thinking: what reply_byte_cap bounds where a client library parsed the reply."""
    return len(completion.text.encode()) + len((completion.reasoning or "").encode())


def reply_too_large(endpoint: str, config: EndpointConfig, what: str = "reply") -> ProviderError:
    """The error for a reply over reply_byte_cap: not retried, since the same request would get the same reply."""
    source = ("max_response_bytes" if config.max_response_bytes is not None
              else f"max_response_bytes; derived from max_tokens={config.max_tokens}")
    return ProviderError(
        f"{what} from {endpoint} exceeds {reply_byte_cap(config)} bytes ({source}) and was not taken in; "
        "set max_response_bytes higher if replies this large are expected",
        retryable=False,
    )


def no_answer_error(completion: Completion, where: str = "", reason_field: str = "finish_reason") -> ProviderError:
    """The error for a reply without answer text (`where`: " from ENDPOINT", or ""). A reasoning model that spent
    max_tokens thinking returned only its reasoning (its text, or only a count of its tokens where the provider
    hides it): the same request would do the same again, so that is not retried, and the message says what to
    change. Any other empty reply is retried."""
    finish = f"{reason_field}={completion.finish_reason}"
    if not (completion.reasoning or completion.reasoning_tokens):
        return ProviderError(f"empty content{where} ({finish})", retryable=True)
    if completion.finish_reason == "length":
        return ProviderError(
            f"empty content{where}: the model returned only reasoning and ran out of tokens before its answer "
            f"({finish}); raise max_tokens to leave room for the answer",
            retryable=False,
        )
    return ProviderError(f"empty content{where}: the model returned only reasoning ({finish})", retryable=True)


def read_api_key(variable: str, purpose: str, unset: str | None = None) -> str:
    """The API key in environment variable `variable`, registered as a secret.

    A ConfigError, before any request, when it is unset (`unset` is then the message; by default one built from
    `purpose`, e.g. "api_key_env of model 'gpt'") or when whitespace surrounds it or a line break is in it: sent
    as is, such a key fails as a server's 401 or as a malformed header, far from its cause. The message never
    shows the key.
    """
    value = os.environ.get(variable)
    if not value:
        raise ConfigError(unset or f"environment variable {variable} ({purpose}) is not set; "
                                   f"export {variable}=... before the run")
    register_secret(value)
    problem = whitespace_problem(value)
    if problem:
        raise ConfigError(f"environment variable {variable} ({purpose}) {problem}; remove it "
                          f"(e.g. {_whitespace_fix(variable, value)})")
    return value


def register_url_password(url: str | None) -> None:
    """Register the password of a URL's `user:password@` as a secret, decoded and as written in the URL."""
    if not url or "@" not in url:
        return
    parsed = yarl.URL(url)
    if parsed.password:
        register_basic_auth(parsed.user or "", parsed.password)
        register_secret(parsed.raw_password)


def whitespace_problem(value: str) -> str | None:
    """What is wrong with a credential's whitespace ("ends with a newline"), or None when there is none."""
    if value.endswith("\n"):
        return "ends with a newline"
    if value.endswith("\r"):
        return "ends with a carriage return"
    if "\n" in value or "\r" in value:
        return "holds a line break"
    if value != value.lstrip():
        return "starts with whitespace"
    if value != value.rstrip():
        return "ends with whitespace"
    return None


def _whitespace_fix(variable: str, value: str) -> str:
    """A shell command that removes the stray whitespace (keys hold none of their own)."""
    if whitespace_problem(value.rstrip("\n")) is None:  # trailing newlines only, which $(...) drops
        return f'export {variable}="$(printf %s "${variable}")"'
    return f"export {variable}=\"$(printf %s \"${variable}\" | tr -d '[:space:]')\""
