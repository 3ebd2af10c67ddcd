"""Reports against a hand-made fixture whose numbers were worked out by hand."""
from __future__ import annotations

from storage.archive.reports import refresh_rollups, report
from tests.archive_harness import Transcript, archive, postgres_database  # noqa: F401 (fixtures)

B = 19000 * 86400  # a UTC midnight
START, END = B + 1800, B + 3 * 86400 + 5  # half-way into the first day .. just into the fourth

EXPECTED = {
    # c1 and c2 on the site, c3 and c4 in the web chat; c0, c5 and c6 were opened outside the period
    "volume": {"by_channel": {"site": 2, "webchat": 2}, "by_role": {"aftersales": 2, "finance": 1, "presales": 1}},
    "first_response_s": {"p50": 120.0, "p90": 300.0},  # 60, 120, 300 (the bot's answer does not count)
    "resolution_s": {"p50": 2000.0, "p90": 3600.0},  # 900, 2000, 3600
    "sla": {"normal": {"met": 2, "breached": 0}, "urgent": {"met": 0, "breached": 1}},  # c3: not answered yet
    "csat": {"alice": {"count": 2, "average": 4.5}, "bob": {"count": 1, "average": 3.0}},
    "top_questions": [{"text": "How much is it?", "count": 2}, {"text": "卡密没收到 订单 123", "count": 2}],
}


def _conversation(cid, opened, *, channel="site", role="aftersales", priority="normal", question="",
                  customer_at=0.0, bot_at=None, agent=None, agent_at=None, closed_at=None, breached_at=None,
                  score=None):
    t = Transcript(cid, channel=channel, role=role, priority=priority, opened=opened, customer=cid)
    log = [t.opened()]
    if agent:
        log.append(t.assigned(agent, opened + 1))
    log.append(t.message(f"{cid}_q", question, opened + customer_at))
    if bot_at is not None:
        log.append(t.message(f"{cid}_bot", "自动回复", opened + bot_at, "bot"))
    if breached_at is not None:
        log.append(t.sla(opened + breached_at))
    if agent_at is not None:
        log.append(t.message(f"{cid}_a", "您好", opened + agent_at, "agent", agent))
        log.append(t.message(f"{cid}_c2", "谢谢", opened + agent_at + 5))
    if closed_at is not None:
        log.append(t.closed(opened + closed_at, agent or "alice"))
    if score is not None:
        log.append(t.csat(score, opened + (closed_at or 0) + 10))
    return log


def fixture() -> list:
    return (
        _conversation("c0", B + 100, question="before the period", agent="alice", agent_at=10, closed_at=20, score=1)
        + _conversation("c1", B + 3600, question="卡密没收到 订单 123", bot_at=1, agent="alice", agent_at=60,
                        closed_at=3600, score=5)
        + _conversation("c2", B + 86400 + 100, role="finance", priority="urgent", question="卡密没收到，订单 456",
                        agent="bob", agent_at=300, closed_at=900, breached_at=200, score=3)
        + _conversation("c3", B + 2 * 86400 + 50, channel="webchat", role="presales", question="How much is it?")
        + _conversation("c4", B + 2 * 86400 + 500, channel="webchat", question="how much is it", agent="alice",
                        customer_at=0, agent_at=120, closed_at=2000, score=4)
        + _conversation("c5", B - 100, question="yesterday", agent="alice", agent_at=5, closed_at=9, score=1)
        + _conversation("c6", B + 3 * 86400 + 10, question="tomorrow", agent="bob", agent_at=5, closed_at=9, score=2)
    )


async def test_report_numbers_match_the_hand_computed_fixture(archive):
    await archive.writer.apply(fixture())
    assert await report(archive.read, START, END) == EXPECTED  # every day still to be rolled up
    assert await refresh_rollups(archive.engine) == 5
    assert await report(archive.read, START, END) == EXPECTED  # whole days from the daily rollups


async def test_a_day_touched_after_its_rollup_is_counted_from_its_conversations(archive):
    await archive.writer.apply(fixture())
    await refresh_rollups(archive.engine)
    late = Transcript("c7", channel="webchat", role="presales", opened=B + 2 * 86400 + 900, customer="c7")
    await archive.writer.apply([late.opened(), late.message("c7_q", "HOW MUCH is it", B + 2 * 86400 + 900)])
    figures = await report(archive.read, START, END)
    assert figures["volume"]["by_channel"] == {"site": 2, "webchat": 3}
    assert figures["top_questions"][0] == {"text": "HOW MUCH is it", "count": 3}


async def test_an_empty_period_has_empty_figures(archive):
    await archive.writer.apply(fixture())
    assert await report(archive.read, B + 10 * 86400, B + 20 * 86400) == {
        "volume": {"by_channel": {}, "by_role": {}}, "first_response_s": {"p50": None, "p90": None},
        "resolution_s": {"p50": None, "p90": None}, "sla": {}, "csat": {}, "top_questions": []}
