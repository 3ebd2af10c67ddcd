"""Reads of archived conversations, in the shapes the agent API shows live ones.

A conversation that has left Redis (`archive.redis_keep_closed`) is rebuilt from
its last hash (`conversations.state`) through storage/conversations.py's own
`conversation_view`, and its messages in `Event.public()`'s shape, so the API
can fall back to the archive without its clients seeing a difference.  A purged
conversation (retention) is not found.  Pass a read-only engine
(`open_engine(url, readonly=True)`): reads never take the writer's lock.
"""
from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.archive import schema
from storage.archive.search import Visibility
from storage.conversations import conversation_view

_m, _c = schema.messages, schema.conversations
_MESSAGE_COLUMNS = (_m.c.id, _m.c.conversation_id, _m.c.direction, _m.c.text, _m.c.sender_kind, _m.c.sender_id,
                    _m.c.sender_name, _m.c.ts, _m.c.attachments, _m.c.channel)
_STATE_COLUMNS = ("id", "channel", "channel_kind", "customer_id", "customer_name", "status", "role", "assignee",
                  "tier", "priority")


class UnknownCursor(ValueError):
    """A `before=` message id or inbox cursor this archive does not know (an API answers 400)."""


def public_message(r: Any) -> dict:
    """A message row as `Event.public()` shows it."""
    atts = json.loads(r.attachments or "[]")
    for a in atts:
        a.pop("sha256", None)  # the evidence chain's business, not the view's
    return {"id": r.id, "conversation_id": r.conversation_id, "direction": r.direction, "text": r.text,
            "sender": {"kind": r.sender_kind, "id": r.sender_id, "name": r.sender_name},
            "ts": r.ts, "attachments": atts, "channel": r.channel}


def _view(row: Any) -> dict:
    h: dict[str, Any] = {name: getattr(row, name) or "" for name in _STATE_COLUMNS}
    h["created_at"] = str(row.opened_at or 0)
    h["updated_at"] = str(row.updated_at or 0)
    h.update(json.loads(row.state or "{}"))
    h.pop("last_message", None)
    view = conversation_view(h)
    assert view is not None
    view["archived"] = True
    return view


class ArchiveReader:
    def __init__(self, engine: AsyncEngine):
        self.engine = engine

    async def conversation(self, cid: str, *, limit: int = 100, before: str | None = None) -> dict | None:
        """The conversation with its last `limit` messages (before message `before`), oldest
        first; `has_more` says whether older ones exist.  None if unknown or purged."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(_c).where(_c.c.id == cid, _c.c.purged_at.is_(None)))).first()
            if row is None:
                return None
            view = _view(row)
            messages = await self._messages(conn, cid, before, limit + 1)
            await self._last_messages(conn, [(view, row.last_message_id)])
        view["has_more"] = len(messages) > limit
        view["messages"] = messages[-limit:] if limit else []
        return view

    async def messages(self, cid: str, *, before: str | None = None, limit: int = 100) -> list[dict]:
        """Up to `limit` messages before message `before` (else the newest), oldest first."""
        async with self.engine.connect() as conn:
            return (await self._messages(conn, cid, before, limit))[-limit:] if limit else []

    async def _messages(self, conn, cid: str, before: str | None, limit: int) -> list[dict]:
        q = sa.select(*_MESSAGE_COLUMNS).where(_m.c.conversation_id == cid)
        if before is not None:
            seq = (await conn.execute(sa.select(_m.c.seq).where(_m.c.id == before, _m.c.conversation_id == cid))
                   ).scalar_one_or_none()
            if seq is None:
                raise UnknownCursor(f"no message {before!r} in this conversation")
            q = q.where(_m.c.seq < seq)
        rows = (await conn.execute(q.order_by(_m.c.seq.desc()).limit(limit))).all()
        return [public_message(r) for r in reversed(rows)]

    async def _last_messages(self, conn, pairs: list[tuple[dict, str | None]]) -> None:
        ids = [mid for _, mid in pairs if mid]
        found = {}
        if ids:
            found = {r.id: public_message(r) for r in
                     (await conn.execute(sa.select(*_MESSAGE_COLUMNS).where(_m.c.id.in_(ids)))).all()}
        for view, mid in pairs:
            view["last_message"] = found.get(mid) if mid else None

    async def _views(self, conn, rows: list) -> list[dict]:
        views = [(_view(r), r.last_message_id) for r in rows]
        await self._last_messages(conn, views)
        return [v for v, _ in views]

    async def customer_conversations(self, customer_id: str, channel: str | None = None,
                                     limit: int = 50) -> list[dict]:
        """A customer's archived conversations, newest first (on one channel, or all)."""
        q = sa.select(_c).where(_c.c.customer_id == customer_id, _c.c.purged_at.is_(None))
        if channel is not None:
            q = q.where(_c.c.channel == channel)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q.order_by(_c.c.opened_at.desc(), _c.c.id.desc()).limit(limit))).all()
            return await self._views(conn, rows)

    async def closed(self, *, limit: int = 50, cursor: str | None = None,
                     visible: Visibility = Visibility(everything=True)) -> tuple[list[dict], str | None]:
        """The inbox of closed conversations, most recently closed first, a page at a time:
        (views, cursor of the next page or None)."""
        q = sa.select(_c).where(_c.c.closed_at.is_not(None), _c.c.purged_at.is_(None), visible.where(_c))
        if cursor:
            at, _, cid = cursor.partition(":")
            try:
                closed_at = float(at)
            except ValueError:
                raise UnknownCursor("not a cursor of this inbox") from None
            q = q.where(sa.or_(_c.c.closed_at < closed_at, sa.and_(_c.c.closed_at == closed_at, _c.c.id < cid)))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q.order_by(_c.c.closed_at.desc(), _c.c.id.desc()).limit(limit + 1))).all()
            views = await self._views(conn, rows[:limit])
        more = len(rows) > limit
        return views, (f"{rows[limit - 1].closed_at!r}:{rows[limit - 1].id}" if more and limit else None)
