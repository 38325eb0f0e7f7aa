"""Jinja2 prompt templates, rendered in a sandbox with bounded size and time.

Users may supply their own judge, guide and RAG templates (`prompt_dir`), and model text only ever enters a
template as a value, never as template source. A template is therefore untrusted code, and these rules hold
(docs/library.md, "Prompt templates", says the same for users):

- One file. `read_template` parses the file before anything renders it and refuses `{% include %}`,
  `{% import %}`, `{% from ... import %}` and `{% extends %}` (there is nothing to load them from) and recursive
  for-loops; a syntax error or a file that is not UTF-8 is a `ConfigError` naming the file and line.
- No Python internals, no changing values: Jinja's immutable sandbox refuses `__class__` and the like (at render
  time, with its own message) and `list.append` and other calls that change a list, dict or set in place.
- Bounded size: the output stops at the cap, OUTPUT_CAP_BASE + 2 x the length of the values passed in. No
  single value built while rendering (`'a' * n`, `x ~ y`, `x + y`, a filter's or method's result, a `{:>n}`
  format) may be larger, and everything built in one render together may not exceed ALLOCATION_FACTOR x the cap,
  so peak memory stays near that. Sizes are worked out before anything is built: `'a' * 10**10` is refused
  without allocating. Integers stay within MAX_INT_BITS bits, call and filter arguments within
  MAX_INTEGER_ARGUMENT, format widths and precisions within MAX_FORMAT_WIDTH.
- Bounded time: RENDER_SECONDS per render and MAX_LOOP_ITEMS loop iterations per render, checked on every call,
  filter, operator and every few hundred loop items.
- Every failure while rendering is a `TemplateRenderError` (a jinja2 `TemplateError`) naming the template file
  (as read by `read_template`), the line where Jinja knows it, and what to do.

How: `_BoundedEnvironment` intercepts `*`, `**`, `%` and `+` (`call_binop`), every call (`call`), every filter
(each is wrapped; Jinja compiles filters to direct calls that bypass `call`), slicing (`getitem`), `str.format`
(`wrap_str_format`) and every output (`finalize`). The parsed template is rewritten before compiling: a
for-loop's iterable goes through a counting iterator, `~` through a sized join, and the literal text of each
output is counted, so text captured by `{% set %}` blocks, macros and filter blocks is bounded too.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from functools import lru_cache, update_wrapper
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, UndefinedError, nodes
from jinja2.exceptions import SecurityError
from jinja2.filters import make_attrgetter
from jinja2.runtime import Macro, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import Namespace, _PassArg, generate_lorem_ipsum
from jinja2.visitor import NodeTransformer
from markupsafe import EscapeFormatter, Markup

from .errors import ConfigError
from .questions import decode_utf8
from .resources import bundled_path

# 4 MiB of prompt is about a million tokens, beyond any model's context window: a template that makes more is
# broken or hostile. The values themselves (answers, passages) may be long; twice their length leaves room for a
# template that shows them twice.
OUTPUT_CAP_BASE = 4 * 1024 * 1024
# Everything built during one render together (intermediate strings, lists, captured blocks), as a multiple of
# the output cap: generous for any template that lays out its values, small enough to keep memory bounded.
ALLOCATION_FACTOR = 8
# Rendering a prompt takes well under a millisecond; 5 s is only reached by a template that loops or computes.
RENDER_SECONDS = 5.0
# A prompt iterates over a handful of passages; a million iterations is a loop nested to burn time.
MAX_LOOP_ITEMS = 1_000_000
# Above this, an integer argument sizes something (a width, a count) far beyond any prompt.
MAX_INTEGER_ARGUMENT = 1_000_000
# `'%100000000s' % x` and `'{:>100000000}'.format(x)` pad to the width: no prompt needs a wider field.
MAX_FORMAT_WIDTH = 100_000
# `2 ** 10**10` would take minutes and gigabytes; 4096 bits is far more than any number a prompt shows.
MAX_INT_BITS = 4096
# Values nested deeper than this are not data a prompt shows; it also keeps size estimates from recursing forever.
MAX_NESTING = 100
# The deadline is checked every this many loop items (a clock read per item would slow every loop).
_DEADLINE_EVERY = 256
_LIMIT_ADVICE = ("a prompt template should lay out the values it is given; remove or shrink that expression "
                 "(the limits are in docs/library.md, Prompt templates)")


class TemplateRenderError(TemplateError):
    """A template failed while rendering; the message names the file, the line and what to do."""


class _LimitExceeded(Exception):
    """A render went past one of its bounds; render() turns it into a TemplateRenderError."""


class _NotRendering(Exception):
    """A hook ran outside render(): Jinja folding constants at compile time. Jinja then evaluates the expression
    at render time instead, where the bounds apply."""


# --- the bounds of the render in progress ------------------------------------------------------------------


@dataclasses.dataclass
class _Budget:
    cap: int
    allowance: int
    deadline: float
    loop_items: int = 0

    @classmethod
    def for_values(cls, values: Mapping[str, Any]) -> _Budget:
        given = sum(_text_size(value, 1 << 62) for value in values.values())
        cap = OUTPUT_CAP_BASE + 2 * given
        return cls(cap, ALLOCATION_FACTOR * cap, time.monotonic() + RENDER_SECONDS)

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise _LimitExceeded(f"rendering took longer than {RENDER_SECONDS:g} s")

    def spend(self, size: int, what: str | Callable[[], str]) -> None:
        """Count `size` bytes about to be built by `what` (a text, or a function making it only when needed);
        refuse past the cap or the render's allowance."""
        if size > self.cap:
            raise _LimitExceeded(f"{_said(what)} would build about {size:,} bytes, more than the {self.cap:,} one "
                                 "render may produce")
        self.allowance -= size
        if self.allowance < 0:
            raise _LimitExceeded(f"the template builds more than {ALLOCATION_FACTOR * self.cap:,} bytes of text and "
                                 f"values in one render ({_said(what)} went past it)")


def _said(what: str | Callable[[], str]) -> str:
    return what if isinstance(what, str) else what()


_ACTIVE: ContextVar[_Budget | None] = ContextVar("arena_template_budget", default=None)


def _active() -> _Budget:
    budget = _ACTIVE.get()
    if budget is None:
        raise _NotRendering()
    return budget


# --- sizes, worked out before anything is built -------------------------------------------------------------


def _units(value: Any) -> int:
    """What a built value costs: a byte per character, 8 per item of a list, tuple, set or dict."""
    if isinstance(value, (str, bytes, bytearray)):
        return len(value)
    if isinstance(value, (list, tuple, set, frozenset, dict, deque)):
        return 8 * len(value)
    return 0


def _text_size(value: Any, limit: int, depth: int = 0) -> int:
    """About len(str(value)), counted without building it; stops counting once past `limit`."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (bytes, bytearray)):
        return 4 * len(value) + 3  # repr escapes a byte as \\xNN at most
    if isinstance(value, bool) or value is None:
        return 5
    if isinstance(value, int):
        return value.bit_length() // 3 + 2
    if isinstance(value, (float, complex)):
        return 50
    if isinstance(value, Undefined):
        return 0
    if depth > MAX_NESTING:
        raise _LimitExceeded(f"a value is nested more than {MAX_NESTING} levels deep")
    parts: Any
    if isinstance(value, (list, tuple, set, frozenset, deque)):
        parts = value
    elif isinstance(value, Namespace):
        parts = _flat_pairs(object.__getattribute__(value, "_Namespace__attrs").items())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        parts = _flat_pairs((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
    elif isinstance(value, Mapping):
        parts = _flat_pairs(value.items())
    else:
        # Jinja's own objects (loop, macro, cycler) and records passed in by the caller: small reprs.
        return len(str(value))
    total = 2 + len(type(value).__name__)
    for part in parts:
        total += _text_size(part, limit - total, depth + 1) + 4  # quotes, separators
        if total > limit:
            break
    return total


def _flat_pairs(pairs: Any) -> Iterator[Any]:
    for key, value in pairs:
        yield key
        yield value


def _text_of(value: Any) -> int:
    return _text_size(value, _active().cap + 1)


def _checked_int(value: Any, what: str) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INTEGER_ARGUMENT:
        raise _LimitExceeded(f"{what} is given the integer {value:,}; calls and filters in a prompt template take "
                             f"integers up to {MAX_INTEGER_ARGUMENT:,}")


def _checked_width(digits: str, what: str) -> int:
    # len() first: int() of a long digit string is itself slow and refused by Python above 4300 digits.
    if len(digits) > len(str(MAX_FORMAT_WIDTH)) or int(digits) > MAX_FORMAT_WIDTH:
        raise _LimitExceeded(f"{what} has the width or precision {digits[:12]}{'...' if len(digits) > 12 else ''}; "
                             f"formats in a prompt template stay at or below {MAX_FORMAT_WIDTH:,}")
    return int(digits)


_PRINTF = re.compile(r"%(?:\(([^)]*)\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([diouxXeEfFgGcrsa%])")


def _printf_size(template: str, operand: Any) -> int:
    """About len(template % operand), refusing widths and precisions above MAX_FORMAT_WIDTH."""
    positional = list(operand) if isinstance(operand, tuple) else [operand]
    total = len(template)
    for match in _PRINTF.finditer(template):
        key, width, precision, conversion = match.groups()
        if conversion == "%":
            continue
        size = 0
        for part in (width, precision):
            if part == "*":
                star = positional.pop(0) if positional else 0
                _checked_int(star, "a `%*s` width")
                size += abs(star) if isinstance(star, int) else 0
            elif part:
                size += _checked_width(part, f"the format {match.group(0)!r}")
        if key is not None and isinstance(operand, Mapping):
            value = operand.get(key)
        else:
            value = positional.pop(0) if positional else None
        total += size + _text_of(value)
    return total


def _spec_size(spec: str, what: str) -> int:
    """The widths and precisions in a resolved `str.format` spec (`>20`, `.3f`, `0>5`), summed."""
    return sum(_checked_width(digits, what) for digits in re.findall(r"\d+", spec))


# --- filters and methods that can build more than they are given ----------------------------------------------


def _center(value: Any, width: int = 80) -> int:
    return max(_text_of(value), width if isinstance(width, int) else 0)


def _indent(s: Any, width: Any = 4, first: bool = False, blank: bool = False) -> int:
    size = _text_of(s)
    lines = s.count("\n") + 1 if isinstance(s, str) else size
    step = len(width) if isinstance(width, str) else max(width, 0) if isinstance(width, int) else 0
    return size + lines * step


def _wordwrap(s: Any, width: int = 79, break_long_words: bool = True, wrapstring: str | None = None,
              break_on_hyphens: bool = True) -> int:
    size = _text_of(s)
    # A break where a line reaches the width, and at most one at each space or newline.
    spaces = s.count(" ") + s.count("\n") if isinstance(s, str) else size
    breaks = size // max(width if isinstance(width, int) else 1, 1) + spaces + 1
    return size + breaks * len(wrapstring or "\n")


def _replace(s: Any, old: Any, new: Any, count: int | None = None) -> int:
    if not isinstance(s, str):
        return _text_of(s) * max(1, _text_of(new))
    old, new = str(old), str(new)
    found = s.count(old) if old else len(s) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(s) + found * max(len(new) - len(old), 0)


def _truncate(s: Any, length: int = 255, killwords: bool = False, end: str = "...", leeway: Any = None) -> int:
    return _text_of(s) + _text_of(end)


def _format(value: Any, *args: Any, **kwargs: Any) -> int:
    return _printf_size(value, kwargs or args) if isinstance(value, str) else _text_of(value)


def _join(value: Any, d: Any = "", attribute: Any = None) -> int:
    items = list(value)
    return sum(_text_of(item) for item in items) + max(len(items) - 1, 0) * _text_of(d)


def _sum(iterable: Any, attribute: Any = None, start: Any = 0) -> int:
    items = iterable if attribute is None else map(make_attrgetter(_ENV, attribute), iterable)
    return _units(start) + sum(_units(item) for item in items)


def _tojson(value: Any, indent: Any = None) -> int:
    size = 6 * _text_of(value)  # \uXXXX for every character that is not ASCII
    step = len(indent) if isinstance(indent, str) else indent if isinstance(indent, int) else 0
    return size + size * max(step, 0)  # at most one indented line per character


def _urlize(value: Any, *args: Any, **kwargs: Any) -> int:
    size = _text_of(value)
    per_link = sum(_text_of(a) for a in (*args, *kwargs.values()) if isinstance(a, str)) + 40
    return 12 * size + (size // 2 + 1) * per_link  # a link per word at most, each with its attributes


def _times(factor: int) -> Callable[..., int]:
    def size(value: Any, *args: Any, **kwargs: Any) -> int:
        return factor * _text_of(value) + sum(_text_of(a) for a in (*args, *kwargs.values()))

    return size


# Filter name → the size of its result from its arguments (value first, as the template passes them). Filters not
# listed build at most a few times what they are given and are counted after they run.
_FILTER_SIZES: dict[str, Callable[..., int]] = {
    "center": _center, "indent": _indent, "wordwrap": _wordwrap, "replace": _replace, "truncate": _truncate,
    "format": _format, "join": _join, "sum": _sum,
    "string": _times(1), "safe": _times(1), "escape": _times(6), "e": _times(6), "forceescape": _times(6),
    "tojson": _tojson, "pprint": _times(4), "urlencode": _times(12), "urlize": _urlize, "xmlattr": _times(6),
}
# These filters take their first argument as an iterable and may be given a generator: it is read into a list
# first, so that working out the size does not use it up.
_MATERIALISE = {"join", "sum"}


def _str_method_size(method: Any, args: tuple, kwargs: dict) -> int | None:
    """The size of a string method's result when it can be larger than the string; None for other calls."""
    owner = getattr(method, "__self__", None)
    if not isinstance(owner, (str, bytes)):
        return None
    name, size = method.__name__, len(owner)

    def arg(index: int, key: str, default: Any) -> Any:
        return args[index] if len(args) > index else kwargs.get(key, default)

    if name in ("center", "ljust", "rjust", "zfill"):
        width = arg(0, "width", 0)
        return max(size, width if isinstance(width, int) else 0)
    if name == "expandtabs":
        tabsize = arg(0, "tabsize", 8)
        tabs = owner.count("\t" if isinstance(owner, str) else b"\t")
        return size + tabs * max(tabsize if isinstance(tabsize, int) else 0, 0)
    if name == "replace":
        old, new, count = arg(0, "old", ""), arg(1, "new", ""), arg(2, "count", -1)
        if not isinstance(old, (str, bytes)) or not isinstance(new, (str, bytes)) or type(old) is not type(owner):
            return size
        found = owner.count(old) if old else size + 1
        if isinstance(count, int) and count >= 0:
            found = min(found, count)
        return size + found * max(len(new) - len(old), 0)
    if name == "join":  # the caller has read the iterable into a list
        items = arg(0, "iterable", ())
        return sum(_text_of(item) for item in items) + max(len(items) - 1, 0) * size
    if name == "translate":
        table = arg(0, "table", {})
        replacements = table.values() if isinstance(table, Mapping) else ()
        return size * max((len(v) for v in replacements if isinstance(v, (str, bytes))), default=1)
    return None


# --- the environment ----------------------------------------------------------------------------------------


def _finalize(value: Any) -> Any:
    """Runs on the value of every `{{ ... }}` before Jinja turns it into text."""
    budget = _active()
    budget.tick()
    budget.spend(len(value) if isinstance(value, str) else _text_size(value, budget.cap + 1), "an output `{{ ... }}`")
    return value


class _BoundedFormatter(SandboxedFormatter):
    """str.format and format_map with widths checked and the result's size counted field by field."""

    def __init__(self, env: Any, what: str, **kwargs: Any):
        super().__init__(env, **kwargs)
        self._what = what

    def format_field(self, value: Any, format_spec: str) -> Any:
        budget = _active()
        budget.tick()
        budget.spend(_spec_size(format_spec, f"the format field {{:{format_spec}}}") + _text_of(value), self._what)
        return super().format_field(value, format_spec)


class _BoundedEscapeFormatter(_BoundedFormatter, EscapeFormatter):
    """For a Markup format string (`'...'|safe`): the values are escaped, as Jinja's own sandbox does."""


class _BoundedEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset(["*", "**", "%", "+"])

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False, finalize=_finalize)
        self.filters = {name: _bounded_filter(name, func) for name, func in self.filters.items()}
        self.tests = {name: _ticking(func) for name, func in self.tests.items()}
        # The rewrite's helpers are filters because Jinja compiles a filter to a direct call: the sandbox's
        # call() would cost microseconds on every loop and every output.
        self.filters.update({"__arena_loop": _bounded_loop, "__arena_concat": _bounded_concat,
                             "__arena_text": _count_text})

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = _Rewrite().visit(super()._parse(source, name, filename))
        tree.set_environment(self)
        return tree

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        budget = _active()
        budget.tick()
        size = _binop_size(operator, left, right)
        if size:
            budget.spend(size, lambda: f"{_short(left)} {operator} {_short(right)}")
        return self.binop_table[operator](left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 (as Jinja's)
        budget = _active()
        budget.tick()
        if isinstance(__obj, Undefined):
            return super().call(__context, __obj, *args, **kwargs)  # fails there, as it always did
        name = f"{getattr(__obj, '__name__', type(__obj).__name__)}()"
        for value in (*args, *(v for k, v in kwargs.items() if k not in ("caller", "_loop_vars", "_block_vars"))):
            _checked_int(value, name)
        if getattr(__obj, "__name__", None) == "join" and args and isinstance(getattr(__obj, "__self__", None), (str, bytes)):
            args = (_listed(args[0]),) + args[1:]
        size = _call_size(__obj, args, kwargs)
        if size is not None:
            budget.spend(size, name)
        result = super().call(__context, __obj, *args, **kwargs)
        budget.tick()
        if size is None and not isinstance(__obj, Macro) and not getattr(__obj, "_arena_counted", False):
            budget.spend(_units(result), name)  # a macro's output was counted as it was written
        return result

    def getitem(self, obj: Any, argument: Any) -> Any:
        result = super().getitem(obj, argument)
        if isinstance(argument, slice):
            _active().spend(_units(result), "a slice")
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        method = super().wrap_str_format(value)
        if method is None:
            return None
        template: str = value.__self__
        is_format_map = value.__name__ == "format_map"
        what = f"{_short(template)}.{value.__name__}()"
        formatter = (_BoundedEscapeFormatter(self, what, escape=template.escape) if isinstance(template, Markup)
                     else _BoundedFormatter(self, what))

        def bounded(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                args, kwargs = (), args[0]
            _active().spend(len(template), formatter._what)
            return type(template)(formatter.vformat(template, args, kwargs))

        bounded._arena_counted = True  # type: ignore[attr-defined]
        return update_wrapper(bounded, value)


def _short(value: Any) -> str:
    """A value as a message shows it: short strings and numbers as written, anything else by its type."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 30 else f"{value[:24]!r}... ({len(value):,} characters)"
    if isinstance(value, (int, float)) and not isinstance(value, bool) and len(str(value)) <= 30:
        return str(value)
    return type(value).__name__


def _binop_size(operator: str, left: Any, right: Any) -> int:
    ints = isinstance(left, int) and isinstance(right, int)
    if operator == "*":
        if ints:
            if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise _LimitExceeded(f"{_short(left)} * {_short(right)} would be an integer of more than "
                                     f"{MAX_INT_BITS} bits")
            return 0
        sequence, times = (left, right) if isinstance(right, int) else (right, left)
        return _units(sequence) * max(times, 0) if isinstance(times, int) else 0
    if operator == "**":
        if ints and right > 0 and abs(left) > 1 and right * math.log2(abs(left)) > MAX_INT_BITS:
            raise _LimitExceeded(f"{_short(left)} ** {_short(right)} would be an integer of about "
                                 f"{right * math.log2(abs(left)):,.0f} bits, more than {MAX_INT_BITS}")
        return 0
    if operator == "%":
        return _printf_size(left, right) if isinstance(left, str) else 0
    if operator == "+" and not ints:
        return _units(left) + _units(right)
    return 0


def _call_size(func: Any, args: tuple, kwargs: dict) -> int | None:
    if func is generate_lorem_ipsum:  # the `lipsum` global: n paragraphs of up to `max` words
        given = {"n": 5, "max": 100} | dict(zip(("n", "html", "min", "max"), args)) | kwargs
        n, words = given["n"], given["max"]
        return (n if isinstance(n, int) else 1) * (words if isinstance(words, int) else 1) * 12
    return _str_method_size(func, args, kwargs)


def _listed(items: Any) -> Any:
    """An iterable (a generator, a string, a range) read into a list, counted, so that the size of what is built
    from it can be worked out before building it, without using it up."""
    if isinstance(items, (list, tuple)) or isinstance(items, Undefined):
        return items
    listed = list(_bounded_loop(items))
    _active().spend(_units(listed), "a list")
    return listed


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    offset = 1 if _PassArg.from_obj(func) is not None else 0
    size_of = _FILTER_SIZES.get(name)

    def bounded(*args: Any, **kwargs: Any) -> Any:
        budget = _active()
        budget.tick()
        what = f"the filter `{name}`"
        for value in (*args[offset + 1:], *kwargs.values()):
            _checked_int(value, what)
        if name in _MATERIALISE and len(args) > offset:
            args = (*args[:offset], _listed(args[offset]), *args[offset + 1:])
        if size_of is not None:
            try:
                size = size_of(*args[offset:], **kwargs)
            except TypeError:
                size = 0  # wrong arguments: the filter itself says so
            budget.spend(size, what)
        elif len(args) > offset and _units(args[offset]) and not isinstance(args[offset], (str, bytes)):
            # Most filters turn their value into text; a list repeating one long string is short but its text is not.
            size = _text_size(args[offset], budget.cap + 1)
            if size > budget.cap:
                raise _LimitExceeded(f"{what} is given a value whose text would be more than {budget.cap:,} characters")
        result = func(*args, **kwargs)
        budget.tick()
        if size_of is None:
            budget.spend(_units(result), what)
        return result

    return update_wrapper(bounded, func)


def _ticking(func: Callable[..., Any]) -> Callable[..., Any]:
    def ticking(*args: Any, **kwargs: Any) -> Any:
        _active().tick()
        return func(*args, **kwargs)

    return update_wrapper(ticking, func)


class _BoundedLoop:
    """A for-loop's iterable that counts its items against the render's loop and time limits."""

    def __init__(self, iterable: Any):
        self._iterable = iterable

    def __len__(self) -> int:  # loop.length, loop.last, loop.revindex
        return len(self._iterable)

    def __iter__(self) -> Iterator[Any]:
        budget = _active()
        for count, item in enumerate(self._iterable, start=1):
            budget.loop_items += 1
            if budget.loop_items > MAX_LOOP_ITEMS:
                raise _LimitExceeded(f"the template's loops ran more than {MAX_LOOP_ITEMS:,} times in one render")
            if count % _DEADLINE_EVERY == 0:
                budget.tick()
            yield item


def _bounded_loop(iterable: Any) -> _BoundedLoop:
    return _BoundedLoop(iterable)


def _bounded_concat(*parts: Any) -> str:
    """`a ~ b ~ c`, sized before it is joined."""
    budget = _active()
    budget.spend(sum(_text_size(part, budget.cap + 1) for part in parts), "a `~` join")
    return "".join(str(part) for part in parts)


def _count_text(size: int) -> str:
    """Counts the literal text of an output: inside `{% set %}` blocks and macros it is kept, not streamed."""
    _active().spend(size, "the template's text")
    return ""


def _helper(name: str, args: list[nodes.Expr], lineno: int) -> nodes.Filter:
    return nodes.Filter(args[0], name, args[1:], [], None, None, lineno=lineno)


class _Rewrite(NodeTransformer):
    """Route loops, `~` and literal output through the render's counters (see the module docstring)."""

    def visit_For(self, node: nodes.For) -> nodes.For:
        node = self.generic_visit(node)
        node.iter = _helper("__arena_loop", [node.iter], node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Call:
        node = self.generic_visit(node)
        return _helper("__arena_concat", list(node.nodes), node.lineno)

    def visit_Output(self, node: nodes.Output) -> nodes.Output:
        node = self.generic_visit(node)
        literal = sum(len(child.data) for child in node.nodes if isinstance(child, nodes.TemplateData))
        if literal:
            node.nodes.insert(0, _helper("__arena_text", [nodes.Const(literal)], node.lineno))
        return node


_ENV = _BoundedEnvironment()
# Template text → the file it was read from, so that render(text) can name the file in its errors.
_SOURCES: dict[str, str] = {}


# --- reading and rendering ----------------------------------------------------------------------------------


def render(template: str, **values: Any) -> str:
    """The template rendered with `values`, within the bounds above; TemplateRenderError when it fails."""
    budget = _Budget.for_values(values)
    token = _ACTIVE.set(budget)
    parts: Iterator[str] | None = None
    try:
        parts = _compiled(template).generate(**values)
        out: list[str] = []
        size = 0
        for part in parts:
            size += len(part)
            if size > budget.cap:
                raise _LimitExceeded(f"the output grew past {budget.cap:,} characters")
            out.append(part)
        return "".join(out)
    except TemplateRenderError:
        raise
    except Exception as exc:
        raise _render_error(exc, template, values) from None
    finally:
        if parts is not None:
            parts.close()
        _ACTIVE.reset(token)


@lru_cache(maxsize=128)
def _compiled(template: str) -> Any:
    # Compiling is ~20x the cost of rendering, and the judge renders the same two templates for every game
    # (bench/bench_orchestration.py).
    return _ENV.from_string(template)


def _render_error(exc: BaseException, template: str, values: Mapping[str, Any]) -> TemplateRenderError:
    line = getattr(exc, "lineno", None) if isinstance(exc, TemplateSyntaxError) else _template_line(exc)
    source = _SOURCES.get(template, "the template")
    where = f"{source}, line {line}" if line else source
    given = ", ".join(values) or "no values"
    if isinstance(exc, _LimitExceeded):
        problem, advice = str(exc), _LIMIT_ADVICE
    elif isinstance(exc, SecurityError):
        problem, advice = str(exc), f"a template may use the values it is given ({given}) and text, not Python internals"
    elif isinstance(exc, UndefinedError):
        problem, advice = str(exc), f"this template is given: {given}"
    elif isinstance(exc, TemplateSyntaxError):
        problem, advice = f"template syntax error: {exc.message}", "fix the template at that line"
    elif isinstance(exc, RecursionError):
        problem, advice = "macros call each other too deeply", "a prompt template needs no recursion; remove it"
    else:
        problem, advice = f"{type(exc).__name__}: {exc}", "fix the expression at that line"
    return TemplateRenderError(f"{problem.rstrip('.')} (in {where}); {advice}")


def _template_line(exc: BaseException) -> int | None:
    """The template line of the innermost template frame in the traceback (Jinja rewrites those frames to show it)."""
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def check_template(text: str, source: str) -> None:
    """Refuse, before any render, a template that cannot work as a single sandboxed file (ConfigError)."""
    try:
        tree = _ENV.parse(text)
        _compiled(text)  # an unknown filter or test is only found when compiling
    except TemplateSyntaxError as exc:
        raise ConfigError(f"{source}: line {exc.lineno}: template syntax error: {exc.message}; fix the template") from None
    loads = {nodes.Include: "include", nodes.Import: "import", nodes.FromImport: "from ... import", nodes.Extends: "extends"}
    found = sorted(tree.find_all(tuple(loads)), key=lambda node: node.lineno)
    if found:
        tag = loads[type(found[0])]
        raise ConfigError(f"{source}: line {found[0].lineno}: {{% {tag} %}} is not supported: a prompt template is "
                          "one file; paste the text in")
    recursive = sorted((node for node in tree.find_all(nodes.For) if node.recursive), key=lambda node: node.lineno)
    if recursive:
        raise ConfigError(f"{source}: line {recursive[0].lineno}: a recursive for-loop is not supported in a prompt "
                          "template; write the levels out as nested loops")


def read_template(prompt_dir: str | Path | None, name: str) -> str:
    """The text of `name` from `prompt_dir`, or from the bundled prompts/ when no folder is given; checked by
    `check_template` and remembered, so that render errors name the file."""
    folder = Path(prompt_dir) if prompt_dir else bundled_path("prompts")
    path = folder / name
    if not path.exists():
        raise ConfigError(f"prompt template {path} is missing; copy the bundled prompts/{name} there and adapt it")
    text = decode_utf8(path.read_bytes(), path)
    check_template(text, str(path))
    _SOURCES[text] = str(path)
    return text
