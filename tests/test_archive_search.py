"""Search: substring semantics in Chinese and English, the same answers on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest

from storage.archive.search import SearchError, Visibility, cjk_bigrams, search
from tests.archive_harness import Transcript, archive, postgres_database  # noqa: F401 (fixtures)

ALL = Visibility(everything=True)

TEXTS = {
    "m_1": "我的卡密没收到，订单号 A1B2C3",
    "m_2": "卡密无效，激活失败",
    "m_3": "Refund please, I was charged twice",
    "m_4": "Is a REFUND possible? 100% sure_thing",
    "m_5": "您好，请提供订单号",
    "m_6": "the key is ok now",
    "m_7": "收到了，谢谢",
}


@pytest.fixture
async def searchable(archive):
    pre = Transcript("c_pre", role="presales", customer="u1")
    after = Transcript("c_after", role="aftersales", customer="u2")
    log = [pre.opened(), after.opened(), after.assigned("bob", 1_000_000.5)]
    for i, (mid, text) in enumerate(TEXTS.items()):
        log.append((pre if i % 2 else after).message(mid, text, 1_000_001 + i))
    await archive.writer.apply(log)
    return archive


async def ids(archive, q, visible=ALL, limit=50):
    return [r["message_id"] for r in await search(archive.read, q, visible, limit)]


@pytest.mark.parametrize("q, expected", [
    ("卡密", ["m_2", "m_1"]),  # two characters, newest first
    ("没收到", ["m_1"]),
    ("收到", ["m_7", "m_1"]),  # a substring inside a longer word
    ("订单号", ["m_5", "m_1"]),
    ("refund", ["m_4", "m_3"]),  # case-insensitive for Latin
    ("REFUND", ["m_4", "m_3"]),
    ("fund", ["m_4", "m_3"]),  # inside a word too
    ("charged twice", ["m_3"]),
    ("ok", ["m_6"]),  # two Latin letters: no index narrows them, still exact
    ("100%", ["m_4"]),  # LIKE's wildcards are plain characters here
    ("_thing", ["m_4"]),
    ("a1b2", ["m_1"]),
    ("退款", []),
    ("卡密 refund", []),
])
async def test_messages_containing_the_query(searchable, q, expected):
    assert await ids(searchable, q) == expected


async def test_results_carry_conversation_text_and_time(searchable):
    (hit,) = await search(searchable.read, "激活失败", ALL)
    assert hit == {"conversation_id": "c_pre", "message_id": "m_2", "text": TEXTS["m_2"], "ts": 1_000_002.0}


async def test_only_conversations_the_reader_may_see(searchable):
    presales = Visibility(roles=frozenset({"presales"}))
    assert await ids(searchable, "卡密", presales) == ["m_2"]
    assert await ids(searchable, "卡密", Visibility(roles=frozenset({"finance"}), agent="bob")) == ["m_1"]
    assert await ids(searchable, "卡密", Visibility(roles=frozenset({"finance"}))) == []
    assert await ids(searchable, "卡密", Visibility()) == []


async def test_at_most_limit_newest_first(archive):
    t = Transcript("c_many")
    await archive.writer.apply([t.message(f"m_{i:03d}", f"第{i}次 卡密没收到", 1_000_000 + i) for i in range(80)])
    got = await ids(archive, "卡密")
    assert got == [f"m_{i:03d}" for i in range(79, 29, -1)]
    assert await ids(archive, "卡密", limit=3) == ["m_079", "m_078", "m_077"]


@pytest.mark.parametrize("q", ["", " ", "卡", "x", "a" * 201])
async def test_queries_too_short_or_too_long_are_refused(searchable, q):
    with pytest.raises(SearchError):
        await search(searchable.read, q, ALL)


def test_the_bigram_form_indexes_every_two_chinese_characters_once():
    assert cjk_bigrams("卡密没 key 卡密") == "卡密 密没"
    assert cjk_bigrams("hello") == ""
