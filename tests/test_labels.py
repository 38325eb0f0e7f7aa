"""Human labels: reading the file, one judge's verdict on a pair, and agreement with the judges counted by hand."""

from __future__ import annotations

import codecs
import json
import math

import pytest
from sklearn.metrics import cohen_kappa_score

from arena_eval.errors import ConfigError
from arena_eval.labels import HumanLabel, human_agreement, majority_verdict, pair_verdict, read_labels
from arena_eval.records import Judgment

BASELINE = "base"


def games(judge: str, question: str, contestant: str, first: str | None, second: str | None) -> list[Judgment]:
    """A judge's two games on one pair: game 1 with the baseline's answer in position A, game 2 swapped."""
    base, other = f"{BASELINE}/{question}", f"{contestant}/{question}"
    return [
        Judgment(f"{judge}:1:{question}:{contestant}", f"cfg-{judge}", question, contestant, BASELINE, 1, base, other,
                 first, "", 1),
        Judgment(f"{judge}:2:{question}:{contestant}", f"cfg-{judge}", question, contestant, BASELINE, 2, other, base,
                 second, "", 1),
    ]


@pytest.mark.parametrize(
    "first, second, expected",
    [
        ("A>B", "B>>A", "model_a"),  # the baseline wins in both positions
        ("B>A", "A>B", "model_b"),  # the contestant wins in both positions
        ("A=B", "A=B", "tie"),
        ("A>B", "A>B", "tie"),  # position A wins both: inconsistent, counted as a tie (MT-bench)
        ("B>>A", "A=B", "tie"),  # a win and a tie disagree too
        ("B>A", None, "model_b"),  # one game parsed: its outcome
        (None, "A>B", "model_b"),  # game 2 alone: position A holds the contestant
        (None, "B>A", "model_a"),
        (None, None, None),  # nothing parsed
    ],
)
def test_pair_verdict(first, second, expected):
    assert pair_verdict(games("j", "q1", "c1", first, second)) == expected


def test_pair_verdict_of_one_game_or_none():
    assert pair_verdict(games("j", "q1", "c1", "A>>B", None)[:1]) == "model_a"
    assert pair_verdict([]) is None


def test_pair_verdict_refuses_games_of_several_pairs_or_a_repeated_game():
    with pytest.raises(ValueError, match="one pair"):
        pair_verdict(games("j", "q1", "c1", "A>B", "B>A") + games("j", "q2", "c1", "A>B", "B>A"))
    with pytest.raises(ValueError, match="game 1 appears more than once"):
        pair_verdict(games("j", "q1", "c1", "A>B", "B>A")[:1] * 2)


def test_majority_verdict():
    assert majority_verdict(["model_a", "model_a", "tie"]) == "model_a"
    assert majority_verdict(["model_a", "model_b", "tie"]) == "tie"  # no majority
    assert majority_verdict(["model_a", "model_b"]) == "tie"  # split
    assert majority_verdict(["model_b", None, None]) == "model_b"  # judges without a verdict do not vote
    assert majority_verdict([None, None]) is None


def write_labels(path, records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" if isinstance(r, dict) else r + "\n" for r in records),
                    encoding="utf-8")
    return str(path)


LABELS = [
    {"question_id": "q1", "model_a": "base", "model_b": "c1", "winner": "model_b", "annotator": "ann1"},  # 1
    {"question_id": "q1", "model_a": "c1", "model_b": "base", "winner": "model_a", "annotator": "ann2"},  # 2 reversed
    {"question_id": "q2", "model_a": "c1", "model_b": "base", "winner": "model_b"},  # 3 reversed
    {"question_id": "q1", "model_a": "base", "model_b": "c2", "winner": "tie"},  # 4
    {"question_id": "q2", "model_a": "base", "model_b": "c2", "winner": "tie (bothbad)"},  # 5
    {"question_id": "q3", "model_a": "base", "model_b": "c1", "winner": "model_a"},  # 6
    {"question_id": "q1", "model_a": "base", "model_b": "c9", "winner": "model_a"},  # 7 unknown model
    {"question_id": "q9", "model_a": "base", "model_b": "c1", "winner": "model_b"},  # 8 unknown question
    {"question_id": "q2", "model_a": "c2", "model_b": "base", "winner": "model_b"},  # 9 reversed
    {"question_id": "q1", "model_a": "c1", "model_b": "c2", "winner": "model_a"},  # 10 two contestants: never judged
]


def three_judges() -> dict[str, list[Judgment]]:
    # Pair verdicts (model_a = the baseline), from the games below:
    #          P1 q1/c1  P2 q2/c1  P3 q1/c2  P4 q2/c2  P5 q3/c1
    #   j1     model_b   model_a   tie       tie*      model_b (one game parsed)
    #   j2     model_b   model_b   model_a   model_a   none (both unparsed)
    #   j3     model_b   model_a†  model_b   model_a   model_a
    #   pooled model_b   model_a   tie (no majority)   model_a   tie (split 1-1)
    # * inconsistent: position A won both games.  † game 1 unparsed, game 2 alone.
    return {
        "j1": games("j1", "q1", "c1", "B>A", "A>>B") + games("j1", "q2", "c1", "A>B", "B>A")
        + games("j1", "q1", "c2", "A=B", "A=B") + games("j1", "q2", "c2", "A>B", "A>B")
        + games("j1", "q3", "c1", "B>A", None),
        "j2": games("j2", "q1", "c1", "B>>A", "A>B") + games("j2", "q2", "c1", "B>A", "A>B")
        + games("j2", "q1", "c2", "A>B", "B>A") + games("j2", "q2", "c2", "A>>B", "B>>A")
        + games("j2", "q3", "c1", None, None),
        "j3": games("j3", "q1", "c1", "B>A", "A>B") + games("j3", "q2", "c1", None, "B>A")
        + games("j3", "q1", "c2", "B>A", "A>B") + games("j3", "q2", "c2", "A>B", "B>A")
        + games("j3", "q3", "c1", "A>B", "B>A"),
    }


def test_agreement_with_human_labels_counted_by_hand(tmp_path):
    path = write_labels(tmp_path / "labels.jsonl", LABELS)
    labels = read_labels(path)
    report = human_agreement(labels, three_judges(), BASELINE)

    # Labels 7, 8 and 10 name no judged pair; the other 7 are compared, oriented with the baseline as model_a
    # (labels 2, 3 and 9 are flipped). Both annotators of P1 (labels 1 and 2) count.
    #   label   1   2   3   4    5    6   9
    #   pair    P1  P1  P2  P3   P4   P5  P4
    #   human   b   b   a   tie  tie  a   a
    assert (report.labels, report.matched, report.unmatched) == (10, 7, 3)
    assert report.unmatched_examples == (f"{path}:7 (q1: base vs c9)", f"{path}:8 (q9: base vs c1)",
                                         f"{path}:10 (q1: c1 vs c2)")

    # j1 (b a tie tie b):  label 1 ✓ 2 ✓ 3 ✓ 4 ✓ 5 ✓ 6 ✗(a/b) 9 ✗(a/tie): 5/7.
    #   Both decisive: 1 ✓ 2 ✓ 3 ✓ 6 ✗: 3/4.
    #   Human a 3, tie 2, b 2; judge a 1, tie 3, b 3: p_e = (3·1 + 2·3 + 2·3)/49 = 15/49;
    #   kappa = (35/49 − 15/49)/(34/49) = 20/34 = 10/17.
    # j2 (b b a a none): label 6 has no verdict; 1 ✓ 2 ✓ 3 ✗(a/b) 4 ✗(tie/a) 5 ✗(tie/a) 9 ✓: 3/6.
    #   Both decisive: 1 ✓ 2 ✓ 3 ✗ 9 ✓: 3/4.
    #   Human a 2, tie 2, b 2; judge a 3, tie 0, b 3: p_e = (2·3 + 0 + 2·3)/36 = 1/3; kappa = (1/2 − 1/3)/(2/3) = 1/4.
    # j3 (b a b a a): 1 ✓ 2 ✓ 3 ✓ 4 ✗(tie/b) 5 ✗(tie/a) 6 ✓ 9 ✓: 5/7. Both decisive: 1 2 3 6 9, all ✓: 5/5.
    #   Human a 3, tie 2, b 2; judge a 4, tie 0, b 3: p_e = (3·4 + 0 + 2·3)/49 = 18/49; kappa = 17/31.
    # pooled (b a tie a tie): 1 ✓ 2 ✓ 3 ✓ 4 ✓ 5 ✗(tie/a) 6 ✗(a/tie) 9 ✓: 5/7. Both decisive: 1 2 3 9: 4/4.
    #   Human a 3, tie 2, b 2; judge a 3, tie 2, b 2: p_e = (9 + 4 + 4)/49 = 17/49; kappa = 18/32 = 9/16.
    expected = {
        #        n  agreement  n_without_ties  agreement_without_ties  kappa  confusion (rows human a/tie/b, columns judge a/tie/b)
        "j1": (7, 5 / 7, 4, 3 / 4, 10 / 17, ((1, 1, 1), (0, 2, 0), (0, 0, 2))),
        "j2": (6, 3 / 6, 4, 3 / 4, 1 / 4, ((1, 0, 1), (2, 0, 0), (0, 0, 2))),
        "j3": (7, 5 / 7, 5, 1.0, 17 / 31, ((3, 0, 0), (1, 0, 1), (0, 0, 2))),
        "pooled": (7, 5 / 7, 4, 1.0, 9 / 16, ((2, 1, 0), (1, 1, 0), (0, 0, 2))),
    }
    assert [a.judge for a in report.judges] == ["j1", "j2", "j3", "pooled"]
    for name, (n, agreement, n_decisive, decisive_agreement, kappa, confusion) in expected.items():
        got = report[name]
        assert got.n == n
        assert got.agreement == pytest.approx(agreement)
        assert got.n_without_ties == n_decisive
        assert got.agreement_without_ties == pytest.approx(decisive_agreement)
        assert got.kappa == pytest.approx(kappa)
        assert got.confusion == confusion
        # The hand-worked kappa is scikit-learn's, from the confusion table's own pairs.
        human, judge = [], []
        for row, h in enumerate(("model_a", "tie", "model_b")):
            for column, v in enumerate(("model_a", "tie", "model_b")):
                human += [h] * confusion[row][column]
                judge += [v] * confusion[row][column]
        assert cohen_kappa_score(human, judge) == pytest.approx(kappa)

    frame = report.frame()
    assert list(frame.columns) == ["judge", "n", "agreement", "n_without_ties", "agreement_without_ties", "kappa"]
    assert frame["judge"].tolist() == ["j1", "j2", "j3", "pooled"]
    assert frame["n"].tolist() == [7, 6, 7, 7]
    tables = report.confusion_tables()
    assert list(tables) == ["j1", "j2", "j3", "pooled"]
    assert tables["j1"].index.tolist() == ["model_a", "tie", "model_b"] and tables["j1"].index.name == "human"
    assert tables["j1"].loc["model_a", "model_b"] == 1 and tables["j1"].loc["tie", "tie"] == 2


def test_judgments_against_another_baseline_are_not_compared():
    judgments = {"j1": games("j1", "q1", "c1", "B>A", "A>B")}
    labels = [HumanLabel("q1", "base", "c1", "model_b"), HumanLabel("q1", "other", "c1", "model_b")]
    report = human_agreement(labels, judgments, "other")
    assert (report.matched, report.unmatched) == (0, 2)
    assert report["j1"].n == 0 and math.isnan(report["j1"].agreement) and math.isnan(report["j1"].kappa)
    assert report["j1"].confusion == ((0, 0, 0),) * 3
    assert report.unmatched_examples == ("q1: base vs c1", "q1: other vs c1")


def test_read_labels_accepts_a_byte_order_mark_numbers_as_ids_and_extra_keys(tmp_path):
    path = tmp_path / "labels.jsonl"
    text = (json.dumps({"question_id": 81, "model_a": "base", "model_b": "c1", "winner": "Model_B", "turn": 1})
            + "\n\n" + json.dumps({"question_id": "q2", "model_a": "c1", "model_b": "base", "winner": "tie (bothbad)",
                                   "annotator": "author_0"}) + "\n")
    path.write_bytes(codecs.BOM_UTF8 + text.encode())
    labels = read_labels(path)
    assert labels == [HumanLabel("81", "base", "c1", "model_b"), HumanLabel("q2", "c1", "base", "tie", "author_0")]
    assert [label.source for label in labels] == [f"{path}:1", f"{path}:3"]


GOOD = {"question_id": "q1", "model_a": "base", "model_b": "c1", "winner": "model_a"}


@pytest.mark.parametrize(
    "bad, message",
    [
        ('{"question_id": "q2", "model_a": "base",', r"labels\.jsonl:3: malformed JSON"),
        ({k: v for k, v in GOOD.items() if k != "winner"}, r"labels\.jsonl:3: missing or empty field `winner`"),
        ({**GOOD, "model_b": ""}, r"labels\.jsonl:3: missing or empty field `model_b`"),
        ({**GOOD, "winner": "model_c"}, r"labels\.jsonl:3: winner 'model_c' is not one of model_a, model_b, tie"),
        ({**GOOD, "model_b": "base"}, r"labels\.jsonl:3: model_a and model_b are both 'base'"),
        ('["q1", "base", "c1", "model_a"]', r"labels\.jsonl:3: expected a JSON object"),
    ],
)
def test_read_labels_errors_name_the_file_and_line(tmp_path, bad, message):
    path = write_labels(tmp_path / "labels.jsonl", [GOOD, GOOD, bad, GOOD])
    with pytest.raises(ConfigError, match=message):
        read_labels(path)


@pytest.mark.parametrize("content", [b"", b"\n  \n", codecs.BOM_UTF8])
def test_an_empty_label_file_is_an_error(tmp_path, content):
    path = tmp_path / "labels.jsonl"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match="holds no labels"):
        read_labels(path)


def test_a_missing_label_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        read_labels(tmp_path / "nowhere.jsonl")
