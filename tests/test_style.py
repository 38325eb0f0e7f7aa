import json
import math

import pandas as pd
import pytest
from conftest import write_config

from arena_eval import Arena, load_config
from arena_eval.config import VerdictWeights
from arena_eval.errors import ArenaError
from arena_eval.judge import battles_from_judgments
from arena_eval.providers import estimate_tokens
from arena_eval.records import Judgment
from arena_eval.style import STYLE_COLUMNS, StyleCounts, answer_styles, style_counts, style_features

MARKDOWN = """# Title
Intro with **bold**, `**inline code**` and __underscored__ bold.

Subtitle
--------

- one
- two with **b1** and **b2**
  1. nested
* * *
***

```python
# a comment, not a header
- not an item
**not bold**
```
> - a quoted item
> ## a quoted header
1) numbered
Closing words
===
1. Step with a nested fence:
    ```bash
    # not a header either
    - nor an item
    ```
"""


def test_style_counts_markdown_outside_code():
    counts = style_counts(MARKDOWN)
    assert counts.headers == 4  # "# Title", setext "Subtitle", "## a quoted header", setext "Closing words"
    assert counts.list_items == 6  # one, two, nested, quoted item, "1) numbered", "1. Step"
    assert counts.bold == 4  # bold, underscored, b1, b2
    assert counts.length == round(len(MARKDOWN) / 4)  # no stored count: ~4 characters a token


def test_style_counts_edge_cases():
    assert style_counts("") == StyleCounts(0, 0, 0, 0)
    # An unclosed fence runs to the end.
    assert style_counts("text\n```\n# x\n- y\n**z**") == StyleCounts(round(22 / 4), 0, 0, 0)
    # Thematic breaks are not list items; "#tag" and "**" alone are no markdown.
    assert style_counts("---\n* * *\n#tag\n** not bold **\n-not an item").list_items == 0
    assert style_counts("#tag\n#######  seven").headers == 0
    assert style_counts("***bold italic*** and ** spaced **").bold == 1
    # The stored token count wins over the estimate.
    assert style_counts("a b c d e f", output_tokens=42).length == 42


def test_style_features_are_normalised_differences():
    a, b = StyleCounts(300, 2, 0, 5), StyleCounts(100, 2, 4, 0)
    assert style_features(a, b) == pytest.approx((200 / 401, 0.0, -4 / 5, 5 / 6))
    assert style_features(b, a) == pytest.approx(tuple(-x for x in style_features(a, b)))


def _judgment(game, a, b, verdict):
    return Judgment(f"g{game}{a}", "judge", "q1", "c1", "base", game, a, b, verdict, "", 1)


def test_battles_carry_the_baseline_answers_style_first_whatever_the_position():
    styles = {"base-answer": StyleCounts(100, 0, 0, 0), "c1-answer": StyleCounts(300, 3, 0, 0)}
    judgments = [
        _judgment(1, "base-answer", "c1-answer", "B>A"),  # baseline in position A
        _judgment(2, "c1-answer", "base-answer", "A>B"),  # positions swapped
        _judgment(2, "c1-answer", "base-answer", None),  # unparsed: no battle
    ]
    battles = battles_from_judgments(judgments, VerdictWeights(), styles)
    assert list(battles.columns[-4:]) == list(STYLE_COLUMNS)
    assert len(battles) == 2 and (battles["winner"] == "model_b").all()
    expected = style_features(styles["base-answer"], styles["c1-answer"])
    assert battles[list(STYLE_COLUMNS)].values.tolist() == [list(expected)] * 2
    assert list(battles_from_judgments(judgments, VerdictWeights()).columns) == [
        "question_id", "model_a", "model_b", "winner", "weight"]


def test_answer_styles_reads_each_judged_answer_once_and_refuses_missing_ones():
    judgments = [_judgment(1, "x", "y", "A>B"), _judgment(2, "y", "x", "A=B")]
    asked = []

    def read(ids, columns):
        asked.append((ids, columns))
        # y is a conversation: its style is counted over both turns' answers, as its tokens are.
        return [(i, "# Head\n- item", 11, None) if i == "x" else
                (i, "- item", None, json.dumps([{"text": "# Head"}, {"text": "- item"}])) for i in ids]

    styles = answer_styles(judgments, read)
    assert asked == [(["x", "y"], ("answer_id", "text", "output_tokens", "turns"))]
    assert styles["x"] == StyleCounts(11, 1, 1, 0)
    assert styles["y"] == StyleCounts(estimate_tokens("# Head\n\n- item"), 1, 1, 0)
    with pytest.raises(ArenaError, match="not in the store"):
        answer_styles(judgments, lambda ids, columns: [])


@pytest.mark.slow  # a second or more on 2 cores
def test_run_with_style_control_reports_the_style_coefficients(tmp_path, fake_server):
    server = fake_server(judge_verdict="hash")
    # Model names are part of the fake answers: a many-word name makes a longer answer.
    contestants = [{"name": "base", "model": "m-base"},
                   {"name": "wordy", "model": "m wordy says a lot more words than the others"}]
    path = write_config(tmp_path, server.base_url, n_questions=30, contestants=contestants,
                        rating={"rounds": 30, "seed": 1, "style_control": True})
    config = load_config(path)
    assert config.rating.style_control
    result = Arena(config).run_sync()

    assert result.exit_code == 0, result.summary
    fitted = result.summary.extra["style"]
    assert set(fitted) == set(STYLE_COLUMNS)
    assert math.isfinite(fitted["style_length"]["coef"]) and fitted["style_length"]["sd"] > 0
    # The fake answers carry no markdown: nothing to fit for those features.
    assert all(math.isnan(fitted[c]["coef"]) for c in STYLE_COLUMNS[1:])
    board = result.leaderboard.set_index("model")
    assert board.loc["base", "score"] == 50.0 and 0 < board.loc["wordy", "score"] < 100

    # Off by default: the same stored judgments scored without style control give the plain fit.
    plain = write_config(tmp_path, server.base_url, n_questions=30, contestants=contestants,
                         rating={"rounds": 30, "seed": 1})
    config = load_config(plain)
    assert not config.rating.style_control
    result = Arena(config).run_sync(("score",), "score")
    assert "style" not in result.summary.extra
    assert isinstance(result.leaderboard, pd.DataFrame)
