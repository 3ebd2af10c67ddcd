"""Splitting texts at platform limits: by characters (Discord) or UTF-8 bytes (WeCom)."""
from __future__ import annotations

from connectors.text_parts import split_text, utf8_size


def test_short_text_is_one_part():
    assert split_text("hello", 10) == ["hello"]
    assert split_text("", 10) == [""]


def test_prefers_paragraph_then_line_then_sentence_then_word():
    text = "a" * 30 + "\n\n" + "b" * 30
    assert split_text(text, 40) == ["a" * 30, "b" * 30]
    assert split_text("a" * 30 + "\n" + "b" * 30, 40) == ["a" * 30, "b" * 30]
    assert split_text("First sentence here. Second one follows", 30) == ["First sentence here.", "Second one follows"]
    assert split_text(("word " * 12).strip(), 22) == ["word word word word", "word word word word", "word word word word"]


def test_bytes_never_cut_a_character_and_never_exceed():
    text = "卡密😀" * 500  # 3- and 4-byte characters, no spaces
    parts = split_text(text, 2048, utf8_size)
    assert "".join(parts) == text
    assert all(utf8_size(p) <= 2048 for p in parts)
    assert all(utf8_size(p) > 2048 - 4 for p in parts[:-1])  # full but for one character


def test_a_word_longer_than_the_limit_is_cut_hard():
    assert split_text("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]
