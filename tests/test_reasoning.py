"""A reasoning model's thinking is kept apart from its answer: split_think and separate_reasoning on hand-made
replies."""

from __future__ import annotations

from arena_eval.reasoning import separate_reasoning, split_think
from arena_eval.records import Completion


# --- split_think and separate_reasoning ---------------------------------------------------------------------


def test_split_think_takes_a_leading_think_block_apart_from_the_answer():
    assert split_think("\n  <think>\n Two and two.\n</think>\n\n  Four.") == ("Four.", "Two and two.")
    assert split_think("<THINK>shout</Think>Four.") == ("Four.", "shout")
    assert split_think("<thinking>long form</thinking>\nFour.") == ("Four.", "long form")
    # An empty block (a Qwen3-style model with thinking switched off) is taken away, with no thinking in it.
    assert split_think("<think>\n\n</think>\n\nFour.") == ("Four.", "")


def test_an_unclosed_think_block_is_all_thinking_and_no_answer():
    assert split_think("<think>First, 2 + 2 is") == ("", "First, 2 + 2 is")
    # A block closed by the other tag's name is not closed.
    assert split_think("<think>a</thinking> b") == ("", "a</thinking> b")


def test_text_that_does_not_start_with_think_is_left_as_it_is():
    text = "Four. In the <think> tag a model writes </think> its thinking."
    assert split_think(text) == (text, None)
    assert split_think("Four.")[0] == "Four." and split_think("")[1] is None
    assert split_think("<b>Four.</b>") == ("<b>Four.</b>", None)
    assert split_think("  Four.")[0] == "  Four."  # not even its whitespace is touched


def test_separate_reasoning_appends_the_think_block_to_the_providers_reasoning():
    original = Completion(text="<think>From the tags.</think>\nFour.", output_tokens=12, reasoning="From the field.",
                          reasoning_tokens=3)
    separated = separate_reasoning(original)
    assert separated.text == "Four."
    assert separated.reasoning == "From the field.\n\nFrom the tags."
    assert (separated.output_tokens, separated.reasoning_tokens) == (12, 3)  # counted as the provider counted them
    assert original.text.startswith("<think>") and original.reasoning == "From the field."  # left as it was


def test_separate_reasoning_does_not_guess_reasoning_tokens():
    separated = separate_reasoning(Completion(text="<think>Hmm.</think>Four.", output_tokens=5))
    assert (separated.text, separated.reasoning, separated.reasoning_tokens) == ("Four.", "Hmm.", None)
    assert separate_reasoning(Completion(text="<think></think>Four.")).reasoning is None  # an empty block: none


def test_separate_reasoning_returns_a_reply_without_think_block_unchanged():
    plain = Completion(text="Four.", reasoning="Field only.", reasoning_tokens=2)
    assert separate_reasoning(plain) is plain
