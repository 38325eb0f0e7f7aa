"""Prompt templates: the bundled prompts render as plain Jinja renders them, and user templates are bounded in
size and time, refused before any render when they cannot work, and every failure names the file and line."""

from __future__ import annotations

import re
import time
import tracemalloc

import pytest
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from arena_eval import templates
from arena_eval.augment.rag import Passage
from arena_eval.errors import ConfigError
from arena_eval.resources import bundled_path
from arena_eval.templates import TemplateRenderError, read_template, render

PASSAGES = [Passage("doc.md#0", "Paris is the capital of France.\n\nIt lies on the Seine."),
            Passage("doc.md#1", "Berlin {{ is }} the capital of Germany.")]
# The values each bundled prompt is rendered with in the pipeline, with text that looks like template syntax.
BUNDLED = {
    "judge_system.j2": [{"question": "Q?", "answer_a": "a", "answer_b": "b"}],
    "judge_user.j2": [{"question": "What is {{ 1 + 1 }}?", "answer_a": "Two.\n{% raw %}", "answer_b": "ü " * 5000}],
    "judge_reask.j2": [{}],
    "judge_user_reference.j2": [{"question": "Q?", "reference": "42, since 6 x 7", "answer_a": "a", "answer_b": "b"}],
    "judge_user_conversation.j2": [
        {"turns": [{"number": 1, "question": "Plan a trip.", "answer_a": "Rome.", "answer_b": "Oslo."},
                   {"number": 2, "question": "In verse?", "answer_a": "Roma...", "answer_b": "Oslo..."}],
         "last_only": False},
        {"turns": [{"number": 1, "question": "1+1?", "answer_a": "2", "answer_b": "3"}], "last_only": True,
         "reference": "2"}],
    "guide_reference.j2": [{"question": "Why is the sky blue?"}],
    "guide_guidance.j2": [{"question": "Why?", "reference": "Rayleigh scattering."}],
    "guidance_system.j2": [{"system_prompt": "Be brief.", "guidance": "Think of scattering."},
                           {"system_prompt": "", "guidance": "Hints."}],
    "rag_user.j2": [{"question": "Capital of France?", "passages": PASSAGES}, {"question": "None?", "passages": []}],
}


def write(tmp_path, text: str | bytes, name: str = "judge_user.j2") -> str:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return read_template(tmp_path, name)


def render_error(template: str, **values) -> tuple[str, float]:
    """(message, seconds) of a render that must fail."""
    started = time.perf_counter()
    with pytest.raises(TemplateRenderError) as info:
        render(template, **values)
    return str(info.value), time.perf_counter() - started


def peak_mib(template: str, **values) -> float:
    """The most memory a failing render allocated at once, in MiB (tracemalloc: slow, so a second render)."""
    tracemalloc.start()
    try:
        with pytest.raises(TemplateRenderError):
            render(template, **values)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def test_every_bundled_prompt_renders_exactly_as_plain_jinja_renders_it():
    plain = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
    assert sorted(BUNDLED) == sorted(p.name for p in bundled_path("prompts").glob("*.j2"))
    for name, cases in BUNDLED.items():
        text = read_template(None, name)
        for values in cases:
            assert render(text, **values) == plain.from_string(text).render(**values), name


def test_templates_keep_the_jinja_they_need_loops_macros_blocks_filters_and_formats():
    plain = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
    text = ("{% macro item(p) %}- {{ p.id }}: {{ p.text|replace('\\n\\n', ' ')|truncate(30) }}{% endmacro %}"
            "{% set header %}{{ passages|length }} passages{% endset %}{{ header|upper }}\n"
            "{% for p in passages %}{{ item(p) }} ({{ loop.index }}/{{ loop.length }}){{ '\\n' if not loop.last }}{% endfor %}\n"
            "{{ passages|map(attribute='id')|join(', ') }} {{ '%-6s|' % 'ab' }} {{ '{:>5}'.format(42) }} "
            "{{ 'x' ~ question ~ 'y' }} {{ 'ab' * 3 }} {{ [1, 2] + [3] }} {{ 2 ** 10 }} {{ 'abc'[1:] }}"
            "{{ ('<b>{}</b>'|safe).format('<i>') }}")
    rendered = render(text, passages=PASSAGES, question="?")
    assert rendered == plain.from_string(text).render(passages=PASSAGES, question="?")
    assert rendered.startswith("2 PASSAGES\n- doc.md#0: Paris is the capital of... (1/2)\n")
    assert rendered.endswith("doc.md#0, doc.md#1 ab    |    42 x?y ababab [1, 2, 3] 1024 bc<b>&lt;i&gt;</b>")


def test_the_output_cap_grows_with_the_values_so_long_answers_still_render():
    answer = "y" * (6 * 2**20)  # longer than the 4 MiB base on its own
    assert render("{{ a }}|{{ a }}", a=answer) == answer + "|" + answer


# Each of these would exhaust memory with plain Jinja (or, for some, run for minutes); here each stops within a
# second, without allocating what it asks for.
EXHAUSTING = {
    "string repeated": ("{{ 'a' * 10**10 }}", r"'a' \* 10000000000 would build about 10,000,000,000 bytes, more than "
                                             r"the 4,194,308 one render may produce"),
    "center filter": ("{{ 'x'|center(10**10) }}", r"the filter `center` is given the integer 10,000,000,000; calls and "
                                                 r"filters in a prompt template take integers up to 1,000,000"),
    "center method": ("{{ 'x'.center(1000000) * 100 }}", r"'  +'\.\.\. \(1,000,000 characters\) \* 100 would build "
                                                        r"about 100,000,000 bytes"),
    "format width": ("{{ '{:>1000000000}'.format(1) }}", r"the format field \{:>1000000000\} has the width or precision "
                                                         r"1000000000; formats in a prompt template stay at or below 100,000"),
    "printf width": ("{{ '%1000000000s' % 'x' }}", r"the format '%1000000000s' has the width or precision 1000000000"),
    "format filter width": ("{{ '%1000000000s'|format('x') }}", r"the format '%1000000000s' has the width"),
    "big power": ("{{ 2 ** (10**10) }}", r"2 \*\* 10000000000 would be an integer of about 10,000,000,000 bits, more "
                                        r"than 4096"),
    "doubling with ~": ("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                        r"a `~` join would build about 8,388,608 bytes, more than the 4,194,308"),
    "doubling with +": ("{% set ns = namespace(s=['x']) %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
                        r"list \+ list would build about 8,388,608 bytes"),
    "many big results kept": ("{{ range(100000)|map('center', 1000000)|list|length }}",
                              r"the template builds more than 33,554,464 bytes of text and values in one render \(the "
                              r"filter `center` went past it\)"),
    "captured text in a loop": ("{% set x %}{% for i in range(100000) %}{% for j in range(9) %}{{ 'y' * 9000 }}"
                                "{% endfor %}{% endfor %}{% endset %}", r"the template builds more than 33,554,464 bytes"),
    "one string shown many times": ("{% set l = ['x' * 1000000] * 100000 %}{{ l }}",
                                    r"an output `\{\{ \.\.\. \}\}` would build about [\d,]+ bytes"),
    "join separator": ("{{ range(100000)|join('x' * 1000000) }}", r"the filter `join` would build about 99,99"),
    "replace growth": ("{{ ('a' * 1000000)|replace('a', 'b' * 100000) }}", r"the filter `replace` would build"),
    "indent growth": ("{{ ('\\n' * 1000000)|indent('x' * 1000000) }}", r"the filter `indent` would build"),
    "wordwrap growth": ("{{ ('a ' * 1000000)|wordwrap(1, wrapstring='x' * 1000000) }}", r"the filter `wordwrap` would build"),
    "tojson indent": ("{{ range(100000)|list|tojson(indent=1000000) }}", r"the filter `tojson` would build"),
    "lipsum": ("{{ lipsum(1000000, max=1000000) }}", r"generate_lorem_ipsum\(\) would build about 12,000,000,000,000 bytes"),
    "str.join": ("{{ ('x' * 1000000).join(['a'] * 100000) }}", r"join\(\) would build about 99,999,"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(EXHAUSTING))
def test_a_template_that_would_exhaust_memory_or_time_is_refused_quickly_naming_its_file(tmp_path, case):
    source, expected = EXHAUSTING[case]
    text = write(tmp_path, "Compare:\n" + source + "\n")
    message, seconds = render_error(text, question="Q?")
    assert re.match(expected, message), message
    assert f"(in {tmp_path / 'judge_user.j2'}, line 2); a prompt template should lay out the values" in message
    assert seconds < 1
    assert peak_mib(text, question="Q?") < 40  # the cap is 4 MiB, the render's allowance 8 times that


def test_loops_nested_to_burn_time_stop_after_a_million_iterations(tmp_path):
    text = write(tmp_path, "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")
    message, seconds = render_error(text)
    assert message.startswith("the template's loops ran more than 1,000,000 times in one render (in ")
    assert seconds < 1


def test_lists_and_dicts_cannot_be_changed_in_place_so_they_cannot_grow_in_a_loop(tmp_path):
    message, _ = render_error(write(tmp_path, "{% set l = [1] %}\n{{ l.extend(l) }}"))
    assert message.startswith("access to attribute 'extend' of 'list' object is unsafe (in ")


def test_a_render_past_its_time_limit_stops_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setattr(templates, "RENDER_SECONDS", 0.3)
    # Slow but small: each count scans a megabyte, and 900,000 of them would take a minute.
    text = write(tmp_path, "{% for i in range(100000) %}{% for j in range(9) %}{{ x.count('a') }}{% endfor %}{% endfor %}")
    message, seconds = render_error(text, x="b" * 2**20)
    assert message.startswith("rendering took longer than 0.3 s (in ") and "judge_user.j2, line 1" in message
    assert seconds < 1.5


@pytest.mark.parametrize("statement, tag", [("{% include 'x' %}", "include"), ("{% import 'x' as y %}", "import"),
                                            ("{% from 'x' import y %}", "from ... import"),
                                            ("{% extends 'x' %}", "extends")])
def test_include_import_and_extends_are_refused_when_the_file_is_read(tmp_path, statement, tag):
    with pytest.raises(ConfigError) as info:
        write(tmp_path, "{{ question }}\n\n" + statement + "\n")
    assert str(info.value) == (f"{tmp_path / 'judge_user.j2'}: line 3: {{% {tag} %}} is not supported: a prompt "
                               "template is one file; paste the text in")


def test_a_recursive_loop_a_syntax_error_and_an_unknown_filter_are_refused_when_the_file_is_read(tmp_path):
    with pytest.raises(ConfigError, match=r"judge_user\.j2: line 2: a recursive for-loop is not supported"):
        write(tmp_path, "x\n{% for p in passages recursive %}{{ loop(p.children) }}{% endfor %}")
    with pytest.raises(ConfigError, match=r"judge_user\.j2: line 3: template syntax error: .*; fix the template"):
        write(tmp_path, "a\nb\n{{ question }\n")
    with pytest.raises(ConfigError, match=r"judge_user\.j2: line 1: template syntax error: No filter named 'nope'"):
        write(tmp_path, "{{ question|nope }}")


def test_a_template_file_that_is_not_utf8_names_the_file_line_and_byte(tmp_path):
    with pytest.raises(ConfigError) as info:
        write(tmp_path, b"line one\nGr\xfc\xdfe {{ question }}\n")
    assert str(info.value) == (f"{tmp_path / 'judge_user.j2'}:2: not valid UTF-8 (byte 0xfc at column 3); "
                               "save the file as UTF-8")


def test_every_render_failure_names_the_file_and_line_and_what_to_do(tmp_path):
    cases = {
        "a\nb\n{{ question.__class__ }}": "access to attribute '__class__' of 'str' object is unsafe (in {file}, line 3); "
                                          "a template may use the values it is given (question) and text, not Python internals",
        "a\n{{ nothing }}": "'nothing' is undefined (in {file}, line 2); this template is given: question",
        "{% if true %}\n{{ 1 // 0 }}{% endif %}": "ZeroDivisionError: integer division or modulo by zero (in {file}, line 2); "
                                                 "fix the expression at that line",
    }
    for source, expected in cases.items():
        message, _ = render_error(write(tmp_path, source), question="Q?")
        assert message == expected.format(file=tmp_path / "judge_user.j2")
