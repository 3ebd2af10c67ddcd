"""Splitting texts at platform limits, measured as each platform measures: characters
(Discord, QQ), UTF-16 units (Telegram), UTF-8 bytes (WeCom)."""
from __future__ import annotations

from connectors.kit.text import split_text, utf16_units, utf8_bytes


def test_short_text_is_one_part():
    assert split_text("hello", 10) == ["hello"]
    assert split_text("", 10) == [""]


def test_prefers_paragraph_then_line_then_sentence_then_word():
    text = "a" * 30 + "\n\n" + "b" * 30
    assert split_text(text, 40) == ["a" * 30, "b" * 30]
    assert split_text("a" * 30 + "\n" + "b" * 30, 40) == ["a" * 30, "b" * 30]
    assert split_text("First sentence here. Second one follows", 30) == ["First sentence here.", "Second one follows"]
    assert split_text(("word " * 12).strip(), 22) == ["word word word word", "word word word word", "word word word word"]
    assert split_text("pi is 3.14159 and e is 2.71828, roughly", 24) == ["pi is 3.14159 and e is", "2.71828, roughly"]


def test_chinese_sentences_and_paragraphs():
    sentences = "这是一句话。" * 1500  # no line breaks: cut after a sentence, nothing lost
    parts = split_text(sentences, 4096, utf16_units)
    assert all(p.endswith("。") for p in parts) and "".join(parts) == sentences
    text = ("第一段。" * 500) + "\n\n" + ("x" * 4000)
    parts = split_text(text, 3000)
    assert parts[0] == "第一段。" * 500 and parts[1:] == ["x" * 3000, "x" * 1000]
    lines = "\n".join(f"line {i}: " + "x" * 50 for i in range(200))
    assert all(p.startswith("line ") and utf16_units(p) <= 4096 for p in split_text(lines, 4096, utf16_units))


def test_telegram_counts_utf16_units():
    emoji = "😀" * 5000  # 2 units each: hard cuts, never inside one
    parts = split_text(emoji, 4096, utf16_units)
    assert [len(p) for p in parts] == [2048, 2048, 904] and "".join(parts) == emoji


def test_bytes_never_cut_a_character_and_never_exceed():
    text = "卡密😀" * 500  # 3- and 4-byte characters, no spaces
    parts = split_text(text, 2048, utf8_bytes)
    assert "".join(parts) == text
    assert all(utf8_bytes(p) <= 2048 for p in parts)
    assert all(utf8_bytes(p) > 2048 - 4 for p in parts[:-1])  # full but for one character


def test_a_word_longer_than_the_limit_is_cut_hard():
    assert split_text("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]
