"""What the command lines print: names and texts from files and servers reach the terminal inert (no control
sequence a terminal would obey, no rich markup read from a name) and without known secrets."""

from __future__ import annotations

import io
import json

from conftest import write_config
from typer.testing import CliRunner

from arena_eval import console
from arena_eval.cli import app
from arena_eval.redaction import forget_all, register_secret

TITLE = "\x1b]0;pwned\x07"  # sets the terminal's title
CLEAR = "\x1b[2J\x1b[H"  # clears the screen, cursor home
C1_CSI = "\x9b2J"  # the same clear with the 8-bit CSI
HOSTILE = f"evil{TITLE}{CLEAR}{C1_CSI}\r[/x]"


def inert(text: str) -> bool:
    """No control character but tab and newline."""
    return not any(ord(c) < 32 and c not in "\t\n" or 0x7f <= ord(c) <= 0x9f for c in text)


def test_for_terminal_shows_every_control_character_as_its_escape_and_keeps_tabs_newlines_and_redaction():
    assert console.for_terminal(HOSTILE) == "evil\\x1b]0;pwned\\x07\\x1b[2J\\x1b[H\\x9b2J\\x0d[/x]"
    assert console.for_terminal("a\tb\nc — ü 日本") == "a\tb\nc — ü 日本"
    register_secret("sk-test-0123456789abcdef")
    try:
        assert console.for_terminal("key sk-test-0123456789abcdef\x1b[2J") == "key ***\\x1b[2J"
    finally:
        forget_all()


def test_messages_and_tables_print_a_hostile_name_as_text_and_never_fail_on_it():
    out = io.StringIO()
    terminal = console.RedactingConsole(file=out, soft_wrap=True, force_terminal=False)
    # A name that reads as a closing markup tag used to end the message in rich's MarkupError.
    terminal.print(f"[yellow]warning: judge {HOSTILE} has too many unparsed games[/yellow]", highlight=False)
    table = console.Table(title=f"scores of {HOSTILE}")
    table.add_column(f"judge {HOSTILE}")
    table.add_row(HOSTILE)
    terminal.print(table)
    printed = out.getvalue()
    assert inert(printed)
    assert "warning: judge evil\\x1b]0;pwned\\x07" in printed and "[/x] has too many" in printed
    assert printed.count("evil\\x1b]0;pwned") == 4  # the message, the title, the header, the cell


def test_a_run_prints_a_contestant_name_with_escape_sequences_inert(tmp_path, fake_server):
    server = fake_server()
    path = write_config(tmp_path, server.base_url, n_questions=3, contestants=[
        {"name": "base", "model": "m-base"}, {"name": HOSTILE, "model": "m-c1"}])
    result = CliRunner().invoke(app, ["run", "--config", str(path), "--no-progress"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert inert(result.stdout) and inert(result.stderr)
    assert "evil\\x1b]0;pwned\\x07\\x1b[2J" in result.stdout  # the leaderboard names it, visibly
    # Human labels naming questions and models with escape sequences: the unmatched ones are quoted.
    labels = tmp_path / "labels.jsonl"
    labels.write_text(json.dumps({"question_id": "q0000", "model_a": "base", "model_b": HOSTILE, "winner": "tie"}) + "\n"
                      + json.dumps({"question_id": f"q{TITLE}", "model_a": f"a{CLEAR}", "model_b": "b",
                                    "winner": "model_a"}) + "\n")
    agreement = CliRunner().invoke(app, ["agreement", "--labels", str(labels), "--config", str(path)],
                                   env={"COLUMNS": "250"})
    assert agreement.exit_code == 0, agreement.output
    assert inert(agreement.stdout) and inert(agreement.stderr)
    assert "q\\x1b]0;pwned\\x07" in agreement.stderr and "a\\x1b[2J" in agreement.stderr


def test_model_and_judge_names_read_from_a_judgment_folder_are_printed_inert(tmp_path):
    folder = tmp_path / "model_judgment" / f"judge{CLEAR}"  # the judge's name is its folder's
    folder.mkdir(parents=True)
    for stem, model, label in (("m", f"m{TITLE}", "B>A"), ("n", f"n{CLEAR}", "A>B")):
        records = [{"question_id": f"q{i}", "model": model, "games": [{"score": label}, {"score": label}]}
                   for i in range(4)]
        (folder / f"{stem}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    result = CliRunner().invoke(app, ["score", "--judgments", str(tmp_path), "--baseline", "base", "--rounds", "20"],
                                env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert inert(result.stdout) and inert(result.stderr)
    assert "m\\x1b]0;pwned\\x07" in result.stdout and "judge\\x1b[2J" in result.stdout
