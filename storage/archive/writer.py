"""ArchiveWriter: change-log records -> SQL, a batch per transaction, idempotently.

Idempotency is keyed by what a record *is*, not by where it came from:
- a message by its message id (kefu's ids are unique and stable: Redis stores it
  once by the same id), so a replayed MESSAGE record finds its row and adds
  nothing — no second row, no second evidence link;
- any other record by a SHA-256 of its content (kind, conversation, time to the
  microsecond, actor, data): a replay is the same record, hence the same key;
- a conversation's row is the newest snapshot: a snapshot older than the one
  stored (`state_ts`) is ignored; tickets by ticket id, CSAT by conversation.
The stream entry id would serve a single stream, but not a log rebuilt, trimmed
and refilled, or records fed from elsewhere (tests, an import); content keys
make `apply` safe whatever replays it.  So a kill -9 between commit and XACK
replays a batch that writes nothing twice.

One process writes (writer_lock.py), so a batch is read-modify-write in Python:
the touched conversations are loaded once, the records applied in log order,
and every table written with one executemany each.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage import changes as ch
from storage.archive import evidence_chain, schema
from storage.archive.reports import day_of, question_key
from storage.archive.search import cjk_bigrams
from storage.changes import Change

log = logging.getLogger("kefu.archive")

# Record kinds the archive understands beyond storage/changes.py's conversation kinds
# (the ticket, CSAT and audit code appends them to the same log).
TICKET = "ticket"  # data: {id, category, priority, status, due}
CSAT = "csat"  # data: {score, comment?, agent?}
AUDIT = "audit"  # data: {action, ...}

# Text a person wrote (the inbox preview); bot and system messages are automatic.
PEOPLE = ("customer", "agent")
QUESTION_CHARS = 500

FileDigests = Callable[[list[str]], Awaitable[dict[str, str]]]

_CONVERSATION_FIELDS = ("channel", "channel_kind", "customer_id", "customer_name", "contact", "role", "tier",
                        "priority", "status", "assignee")


@dataclass(slots=True)
class Applied:
    messages: int = 0  # new messages written (a replayed one is not)
    conversations: int = 0
    unreadable: list[str] = field(default_factory=list)  # message records whose message could not be decoded


@dataclass(slots=True)
class _Conv:
    """A conversation's row while a batch is applied to it."""
    row: dict[str, Any]
    new: bool
    touched: bool = False


def _record_key(c: Change) -> str:
    body = json.dumps([c.kind, c.cid, round(c.ts * 1_000_000), c.actor, c.data], sort_keys=True,
                      ensure_ascii=False, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def _text(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return "" if v is None else str(v)


def _float(v: Any) -> float | None:
    try:
        f = float(_text(v))
    except ValueError:
        return None
    return f if math.isfinite(f) and f > 0 else None


def _new_row(cid: str) -> dict[str, Any]:
    row: dict[str, Any] = {col.name: None for col in schema.conversations.columns}
    row.update(id=cid, channel="", channel_kind="", customer_id="", customer_name="", contact="", role="",
               tier="", priority="normal", status="", assignee="", opened_at=0.0, updated_at=0.0,
               sla_breached=False, message_count=0, anchored_seq=0, state="{}", state_ts=0.0)
    return row


def upsert(engine_or_conn: AsyncEngine | AsyncConnection, table: sa.Table):
    """INSERT for the backend, with its ON CONFLICT clauses."""
    return (postgresql.insert if engine_or_conn.dialect.name == "postgresql" else sqlite.insert)(table)


class ArchiveWriter:
    def __init__(self, engine: AsyncEngine, *, file_digests: FileDigests | None = None):
        self.engine = engine
        self.file_digests = file_digests  # attachment id -> SHA-256 of its bytes, where still known

    async def apply(self, changes: list[Change]) -> Applied:
        """Write `changes` (in change-log order) in one transaction."""
        if not changes:
            return Applied()
        async with self.engine.begin() as conn:
            return await self._apply(conn, changes)

    async def _apply(self, conn: AsyncConnection, changes: list[Change]) -> Applied:
        c = schema.conversations
        cids = sorted({x.cid for x in changes if x.cid})
        convs: dict[str, _Conv] = {}
        for part in _chunks(cids):
            for r in (await conn.execute(sa.select(c).where(c.c.id.in_(part)))).mappings():
                convs[r["id"]] = _Conv(dict(r), new=False)
        mids = [x.mid for x in changes if x.kind == ch.MESSAGE]
        seen: set[str] = set()
        for part in _chunks(mids):
            seen.update((await conn.execute(sa.select(schema.messages.c.id)
                                            .where(schema.messages.c.id.in_(part)))).scalars())
        messages: list[dict] = []
        links: list[dict] = []
        events: list[dict] = []
        tickets: dict[str, dict] = {}
        scores: list[dict] = []
        audits: list[dict] = []
        pending_files: list[tuple[dict, list[dict]]] = []
        unreadable: list[str] = []
        for change in changes:
            if not change.cid:
                if change.kind == AUDIT:
                    audits.append(self._audit(change))
                continue  # agent presence: not a conversation's history
            conv = convs.get(change.cid)
            if conv is None:
                conv = convs[change.cid] = _Conv(_new_row(change.cid), new=True)
            conv.touched = True
            owner = conv.row["assignee"]  # closing clears it in the hash; CSAT is the last owner's
            self._snapshot(conv.row, change)
            if change.kind == ch.MESSAGE:
                if change.mid in seen:
                    continue
                seen.add(change.mid)
                msg = self._message(conv.row, change)
                if msg is None:
                    unreadable.append(change.mid)
                else:
                    messages.append(msg)
                    pending_files.append((msg, msg.pop("_attachments")))
                continue
            if change.kind == ch.OPENED and not conv.row["opened_at"]:
                conv.row["opened_at"] = change.ts
            elif change.kind == ch.CLOSED and conv.row["closed_at"] is None:
                conv.row["closed_at"] = change.ts
                conv.row["closed_by"] = change.actor
                conv.row["closed_assignee"] = change.data.get("assignee") or owner
            elif change.kind == ch.SLA:
                conv.row["sla_breached"] = True
            elif change.kind == TICKET and change.data.get("id"):
                self._ticket(tickets, change)
            elif change.kind == CSAT:
                score = self._score(conv.row, change)
                if score is not None:
                    scores.append(score)
            elif change.kind == AUDIT:
                audits.append(self._audit(change))
            events.append({"key": _record_key(change), "conversation_id": change.cid, "kind": change.kind,
                           "ts": change.ts, "actor": change.actor,
                           "data": json.dumps(change.data, ensure_ascii=False, default=str)})
        await self._chain(pending_files, convs, links)
        rows = [self._finish(x.row) for x in convs.values() if x.touched]
        if rows:
            ins = upsert(conn, c)
            await conn.execute(ins.on_conflict_do_update(
                index_elements=[c.c.id], set_={col.name: ins.excluded[col.name] for col in c.columns
                                               if col.name != "id"}), rows)
        if messages:
            await conn.execute(schema.messages.insert(), messages)
            await conn.execute(schema.evidence_links.insert(), links)
        if events:
            await conn.execute(upsert(conn, schema.conversation_events).on_conflict_do_nothing(), events)
        if tickets:
            await self._write_tickets(conn, list(tickets.values()))
        if scores:
            await conn.execute(upsert(conn, schema.csat).on_conflict_do_nothing(), scores)
        if audits:
            await conn.execute(upsert(conn, schema.audit).on_conflict_do_nothing(), audits)
        days = sorted({day_of(r["opened_at"]) for r in rows if r["opened_at"]})
        if days:
            await conn.execute(upsert(conn, schema.rollup_dirty).on_conflict_do_nothing(),
                               [{"day": d} for d in days])
        return Applied(messages=len(messages), conversations=len(rows), unreadable=unreadable)

    # -- per record ----------------------------------------------------------------
    @staticmethod
    def _snapshot(row: dict, change: Change) -> None:
        """Take the conversation's fields from the newest hash the log carried."""
        if not change.conv or change.ts < row["state_ts"]:
            return
        h = {k: _text(v) for k, v in change.conv.items() if k != "last_message"}
        for name in _CONVERSATION_FIELDS:
            if name in h:
                row[name] = h[name]
        row["priority"] = row["priority"] or "normal"
        if not row["opened_at"]:
            row["opened_at"] = _float(h.get("created_at")) or 0.0
        row["updated_at"] = max(row["updated_at"] or 0.0, _float(h.get("updated_at")) or change.ts)
        row["state"] = json.dumps(h, ensure_ascii=False, sort_keys=True)
        row["state_ts"] = change.ts

    def _message(self, row: dict, change: Change) -> dict | None:
        ev = change.message()
        if ev is None:
            log.warning("archive: message record without a readable message",
                        extra={"conversation": change.cid, "message": change.mid})
            return None
        row["message_count"] += 1
        if not row["opened_at"]:
            row["opened_at"] = ev.ts
        if not row["channel"]:
            row.update(channel=ev.channel, channel_kind=ev.channel_kind, customer_id=ev.customer_id)
        kind = ev.sender_kind
        if kind == "customer" and row["first_customer_at"] is None:
            row["first_customer_at"] = ev.ts
        if kind == "agent" and row["first_response_at"] is None and row["first_customer_at"] is not None:
            row["first_response_at"] = ev.ts
        if kind == "customer" and row["question"] is None and ev.text.strip():
            row["question"] = ev.text.strip()[:QUESTION_CHARS]
            row["question_key"] = question_key(ev.text)
        if kind in PEOPLE:
            row["last_message_id"] = ev.id
        row["updated_at"] = max(row["updated_at"] or 0.0, ev.ts)
        attachments = [dict(a) for a in ev.attachments if isinstance(a, dict)]
        return {"id": ev.id, "conversation_id": change.cid, "seq": row["message_count"], "channel": ev.channel,
                "direction": ev.direction, "sender_kind": kind, "sender_id": ev.sender_id,
                "sender_name": ev.sender_name, "text": ev.text, "ts": ev.ts, "grams": cjk_bigrams(ev.text),
                "_attachments": attachments}

    async def _chain(self, pending: list[tuple[dict, list[dict]]], convs: dict[str, _Conv],
                     links: list[dict]) -> None:
        """Hash the new messages into their conversations' chains, in order."""
        if not pending:
            return
        ids = [a["id"] for _, atts in pending for a in atts if isinstance(a.get("id"), str)]
        digests = await self.file_digests(ids) if ids and self.file_digests else {}
        for msg, atts in pending:
            for a in atts:
                a["sha256"] = digests.get(a.get("id")) or a.get("sha256")
            msg["attachments"] = json.dumps(atts, ensure_ascii=False)
            row = convs[msg["conversation_id"]].row
            d = evidence_chain.digest(evidence_chain.canonical_message(
                id=msg["id"], conversation_id=msg["conversation_id"], direction=msg["direction"],
                sender_kind=msg["sender_kind"], sender_id=msg["sender_id"], sender_name=msg["sender_name"],
                text=msg["text"], attachments=atts, ts=msg["ts"]))
            h = evidence_chain.link_hash(row["head_hash"] or evidence_chain.GENESIS, d)
            row["head_hash"] = h
            links.append({"conversation_id": msg["conversation_id"], "seq": msg["seq"], "message_id": msg["id"],
                          "digest": d, "hash": h})

    @staticmethod
    def _ticket(tickets: dict[str, dict], change: Change) -> None:
        d = change.data
        due = _float(d.get("due"))
        t = tickets.setdefault(str(d["id"]), {"id": str(d["id"]), "conversation_id": change.cid,
                                             "created_at": change.ts})
        t.update(category=str(d.get("category") or t.get("category") or ""),
                 priority=str(d.get("priority") or t.get("priority") or "normal"),
                 status=str(d.get("status") or t.get("status") or "open"),
                 due=due if due is not None else t.get("due"), updated_at=change.ts,
                 data=json.dumps(d, ensure_ascii=False, default=str))

    @staticmethod
    async def _write_tickets(conn: AsyncConnection, rows: list[dict]) -> None:
        t = schema.tickets
        ins = upsert(conn, t)
        await conn.execute(ins.on_conflict_do_update(
            index_elements=[t.c.id],
            set_={n: ins.excluded[n] for n in ("category", "priority", "status", "due", "updated_at", "data")},
            where=t.c.updated_at <= ins.excluded.updated_at), rows)

    @staticmethod
    def _score(row: dict, change: Change) -> dict | None:
        try:
            score = int(change.data.get("score"))
        except (TypeError, ValueError):
            return None
        if not 1 <= score <= 5:
            return None
        return {"conversation_id": change.cid, "score": score, "comment": str(change.data.get("comment") or ""),
                "agent": str(change.data.get("agent") or row["closed_assignee"] or row["assignee"] or ""),
                "ts": change.ts}

    @staticmethod
    def _audit(change: Change) -> dict:
        return {"key": _record_key(change), "ts": change.ts, "actor": change.actor,
                "action": str(change.data.get("action") or ""), "conversation_id": change.cid,
                "data": json.dumps(change.data, ensure_ascii=False, default=str)}

    @staticmethod
    def _finish(row: dict) -> dict:
        """The derived figures, from what the batch changed."""
        out = dict(row)
        if out["first_response_at"] is not None and out["first_customer_at"] is not None:
            out["first_response_s"] = max(0.0, out["first_response_at"] - out["first_customer_at"])
        if out["closed_at"] is not None and out["opened_at"]:
            out["resolution_s"] = max(0.0, out["closed_at"] - out["opened_at"])
        return out


def _chunks(items: list, size: int = 500):
    for i in range(0, len(items), size):
        yield items[i:i + size]
