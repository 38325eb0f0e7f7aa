"""The provider interface: a provider turns chat messages into a Completion or raises a ProviderError.

Retrying is not a provider's business (collect.call_with_retries does it the same way for all); a provider
only says whether a failure is worth retrying and for how long the server asked us to wait.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..config import redact_url
from ..records import Completion, Message
from ..redaction import redact


RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
# Finish reasons that mean the provider refused to answer: an error, never an answer.
REFUSALS = frozenset({"content_filter", "refusal", "safety"})


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
