"""The figures of SPEC `GET /api/reports`, from the archive.

A conversation counts in the period in which it was opened.  Counts (volume by
channel and role, SLA met/breached per priority, CSAT per agent, top questions)
come from `report_daily`, one row per UTC day and figure, for whole days inside
the period; the partial days at its edges and days the writer has touched since
their rollup (`rollup_dirty`) are counted from the conversations themselves, so
the answer is exact whenever it is asked.  Percentiles (first response and
resolution, nearest rank, to the second below an hour) are counted from the
conversations through the index on (opened_at, first_response_s, resolution_s).

- First response: seconds from the customer's first message to the first
  message of a human agent after it (bot and system messages do not count).
- Resolution: seconds from opening to closing.
- SLA: breached when an SLA record (breach or escalation) was logged for it;
  met when it was answered or closed without one.
- Top questions: customers' first messages, grouped by normalised text.
"""
from __future__ import annotations

import math
import re
import unicodedata
from collections import defaultdict

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.archive import schema

DAY = 86400
TOP_QUESTIONS = 10
_NOT_WORD = re.compile(r"[\W_]+")
_DIGITS = re.compile(r"\d+")


def day_of(ts: float) -> int:
    return int(ts // DAY)


def question_key(text: str) -> str:
    """Questions that differ only in case, width, spacing, punctuation or numbers
    (order numbers, amounts) are one question."""
    t = unicodedata.normalize("NFKC", text).casefold()
    return _DIGITS.sub("#", _NOT_WORD.sub("", t))[:200]


def _aggregates(start: float, end: float) -> sa.CompoundSelect:
    """(dim, key, label, n, total) of the conversations opened in [start, end)."""
    c, s = schema.conversations, schema.csat
    opened = sa.and_(c.c.opened_at >= start, c.c.opened_at < end)
    blank, zero = sa.literal(""), sa.cast(sa.literal(0), sa.Double)

    def count_by(dim: str, key, *where) -> sa.Select:
        return (sa.select(sa.literal(dim), key, blank, sa.func.count(), zero)
                .where(opened, *where).group_by(key))

    answered = sa.or_(c.c.first_response_at.is_not(None), c.c.closed_at.is_not(None))
    return sa.union_all(
        count_by("channel", c.c.channel),
        count_by("role", c.c.role),
        count_by("sla_met", c.c.priority, c.c.sla_breached.is_(False), answered),
        count_by("sla_breached", c.c.priority, c.c.sla_breached.is_(True)),
        sa.select(sa.literal("csat"), s.c.agent, blank, sa.func.count(), sa.cast(sa.func.sum(s.c.score), sa.Double))
        .select_from(s.join(c, c.c.id == s.c.conversation_id)).where(opened).group_by(s.c.agent),
        sa.select(sa.literal("question"), c.c.question_key, sa.func.min(c.c.question), sa.func.count(), zero)
        .where(opened, c.c.question_key.is_not(None), c.c.question_key != "").group_by(c.c.question_key),
    )


async def refresh_rollups(engine: AsyncEngine, limit: int = 31) -> int:
    """Recompute the daily figures of days the writer touched (the writer's process
    runs this between batches); returns how many days were refreshed."""
    d, r = schema.rollup_dirty, schema.report_daily
    async with engine.begin() as conn:
        days = list((await conn.execute(sa.select(d.c.day).order_by(d.c.day).limit(limit))).scalars())
        for day in days:
            rows = (await conn.execute(_aggregates(day * DAY, (day + 1) * DAY))).all()
            await conn.execute(sa.delete(r).where(r.c.day == day))
            if rows:
                await conn.execute(r.insert(), [{"day": day, "dim": x[0], "key": x[1] or "", "label": x[2] or "",
                                                 "n": x[3], "total": x[4] or 0.0} for x in rows])
            await conn.execute(sa.delete(d).where(d.c.day == day))
    return len(days)


def _bucket(column: sa.Column) -> sa.ColumnElement:
    """A time to the second below an hour, to 10 s below a day, to the minute beyond."""
    return sa.case((column < 3600, sa.func.round(column)), (column < DAY, sa.func.round(column / 10) * 10),
                   else_=sa.func.round(column / 60) * 60)


async def _percentiles(conn: AsyncConnection, column: sa.Column, start: float, end: float) -> dict:
    """p50 and p90 (nearest rank) of `column` over the conversations opened in [start, end),
    from a histogram the database counts through the covering index: a few thousand
    rows reach Python, not one per conversation."""
    c = schema.conversations
    bucket = _bucket(column).label("bucket")
    rows = (await conn.execute(sa.select(bucket, sa.func.count()).where(
        c.c.opened_at >= start, c.c.opened_at < end, column.is_not(None)).group_by(bucket).order_by(bucket))).all()
    total = sum(n for _, n in rows)
    out: dict[str, float | None] = {}
    for p in (50, 90):
        rank, seen, value = math.ceil(p / 100 * total), 0, None
        for value, n in rows:
            seen += n
            if seen >= rank:
                break
        out[f"p{p}"] = float(value) if total else None
    return out


async def report(engine: AsyncEngine, start: float, end: float) -> dict:
    """SPEC's report of the conversations opened in [start, end) (Unix seconds)."""
    r, d = schema.report_daily, schema.rollup_dirty
    first_day, end_day = math.ceil(start / DAY), math.floor(end / DAY)
    raw_ranges: list[tuple[float, float]] = []
    figures: list[tuple] = []
    async with engine.connect() as conn:
        if first_day < end_day:
            dirty = set((await conn.execute(sa.select(d.c.day).where(d.c.day >= first_day, d.c.day < end_day)))
                        .scalars())
            clean = sa.and_(r.c.day >= first_day, r.c.day < end_day, r.c.day.not_in(sorted(dirty)) if dirty
                            else sa.true())
            figures += (await conn.execute(
                sa.select(r.c.dim, r.c.key, sa.func.min(r.c.label), sa.func.sum(r.c.n), sa.func.sum(r.c.total))
                .where(clean).group_by(r.c.dim, r.c.key))).all()
            raw_ranges += [(start, first_day * DAY), (end_day * DAY, end)]
            raw_ranges += [(day * DAY, (day + 1) * DAY) for day in sorted(dirty)]
        else:
            raw_ranges.append((start, end))
        for a, b in raw_ranges:
            if a < b:
                figures += (await conn.execute(_aggregates(a, b))).all()
        c = schema.conversations
        first = await _percentiles(conn, c.c.first_response_s, start, end)
        resolution = await _percentiles(conn, c.c.resolution_s, start, end)
    return _shape(figures, first, resolution)


def _shape(figures: list[tuple], first: dict, resolution: dict) -> dict:
    counts: dict[tuple[str, str], list] = defaultdict(lambda: [None, 0, 0.0])
    for dim, key, label, n, total in figures:
        acc = counts[(dim, key or "")]
        acc[0] = label if acc[0] is None or (label and label < acc[0]) else acc[0]
        acc[1] += int(n)
        acc[2] += float(total or 0)
    out: dict = {"volume": {"by_channel": {}, "by_role": {}}, "first_response_s": first,
                 "resolution_s": resolution, "sla": {}, "csat": {}, "top_questions": []}
    questions = []
    for (dim, key), (label, n, total) in sorted(counts.items()):
        if dim == "channel":
            out["volume"]["by_channel"][key] = n
        elif dim == "role":
            out["volume"]["by_role"][key] = n
        elif dim in ("sla_met", "sla_breached"):
            out["sla"].setdefault(key, {"met": 0, "breached": 0})[dim[4:]] = n
        elif dim == "csat":
            out["csat"][key] = {"count": n, "average": round(total / n, 2)}
        elif dim == "question":
            questions.append({"text": label, "count": n})
    questions.sort(key=lambda q: (-q["count"], q["text"]))
    out["top_questions"] = questions[:TOP_QUESTIONS]
    return out
