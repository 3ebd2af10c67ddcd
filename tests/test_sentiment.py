"""Anger score (routing/sentiment.py) on the shipped fixture and its signals."""
from __future__ import annotations

import pytest

from routing.data import labelled
from routing.sentiment import ANGRY, anger_score


@pytest.mark.parametrize("label,text", labelled("anger.tsv"))
def test_fixture(label, text):
    score = anger_score(text)
    assert 0.0 <= score <= 1.0
    assert (score >= ANGRY) == (label == "angry"), f"{text!r} scored {score:.2f}"


def test_fixture_has_both_kinds_in_both_languages():
    rows = labelled("anger.tsv")
    kinds = {(label, text.isascii()) for label, text in rows}
    assert kinds == {("angry", True), ("angry", False), ("calm", True), ("calm", False)}


def test_negation_weakens_and_intensifiers_strengthen():
    assert anger_score("不是骗子") < anger_score("骗子") < anger_score("真是骗子")
    assert anger_score("you are not liars") < anger_score("you are liars") < anger_score("you are such liars")


def test_repeated_punctuation_and_capitals_raise_the_score():
    assert anger_score("太差了!!!") > anger_score("太差了")
    assert anger_score("WHY IS MY CODE NOT HERE") > anger_score("why is my code not here")


def test_threats_alone_are_angry():
    for text in ("我要打12315", "再这样我就报警", "I will do a chargeback", "expect a call from my lawyer"):
        assert anger_score(text) >= ANGRY, text
