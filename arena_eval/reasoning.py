"""Placeholder until the reasoning branch lands: keeps the interface collect.py uses."""

from __future__ import annotations

from .records import Completion


def separate_reasoning(completion: Completion) -> Completion:
    return completion
