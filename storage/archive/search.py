"""Full-text search over archived messages (SPEC `GET /api/search`).

Semantics, the same on both backends: a message matches when it contains the query
as a substring, ASCII letters compared case-insensitively (other characters as
they are); queries have at least 2 characters (Chinese words are often two:
退款, 卡密).  Results are newest first (the order the archive received them), at most
`limit`, only in conversations `visible` allows, text raw — the caller masks it.

How candidates are found before the exact substring check:
- 3+ characters: trigrams — SQLite FTS5's trigram tokenizer (every trigram of the
  query), PostgreSQL's pg_trgm GIN index with ILIKE;
- 2 characters, both CJK: the message's CJK bigrams (`messages.grams`, written by
  the archive writer) — an FTS5 index on SQLite, a GIN index over the array on
  PostgreSQL;
- 2 other characters (rare: "ok", "id"): no index can narrow them, the newest
  messages are scanned until `limit` match.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.archive import schema

MIN_QUERY = 2
MAX_QUERY = 200

_CJK = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\U00020000-\U0002fa1f]+")
_ASCII_FOLD = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


class SearchError(ValueError):
    """A query that cannot be searched (the API answers 400 with its message)."""


def cjk_bigrams(text: str) -> str:
    """The CJK bigrams of `text`, space separated, each once: what `messages.grams` holds."""
    grams: dict[str, None] = {}
    for run in _CJK.findall(text):
        grams.update(dict.fromkeys(map(str.__add__, run, run[1:])))
    return " ".join(grams)


@dataclass(frozen=True, slots=True)
class Visibility:
    """Which conversations a reader may see: every one, or those of `roles` and
    those assigned to `agent` (SPEC "Permissions")."""
    everything: bool = False
    roles: frozenset[str] = frozenset()
    agent: str | None = None

    def where(self, conversations: sa.Table) -> sa.ColumnElement[bool]:
        if self.everything:
            return sa.true()
        allowed = []
        if self.roles:
            allowed.append(conversations.c.role.in_(sorted(self.roles)))
        if self.agent:
            allowed.append(conversations.c.assignee == self.agent)
        return sa.or_(*allowed) if allowed else sa.false()


def _ascii_lower(expr: sa.ColumnElement, postgres: bool) -> sa.ColumnElement:
    # SQLite's lower() folds ASCII only; PostgreSQL's folds by locale: translate() keeps
    # both to the same rule, so both backends give the same answers.
    if postgres:
        return sa.func.translate(expr, string.ascii_uppercase, string.ascii_lowercase)
    return sa.func.lower(expr)


async def search(engine: AsyncEngine, q: str, visible: Visibility, limit: int = 50) -> list[dict]:
    """[{"conversation_id", "message_id", "text", "ts"}] of messages containing `q`."""
    q = q.strip()
    if len(q) < MIN_QUERY:
        raise SearchError(f"the query needs at least {MIN_QUERY} characters")
    if len(q) > MAX_QUERY:
        raise SearchError(f"the query may have at most {MAX_QUERY} characters")
    postgres = engine.dialect.name == "postgresql"
    m, c = schema.messages, schema.conversations
    cjk_pair = len(q) == 2 and _CJK.fullmatch(q) is not None
    exact_position = sa.func.strpos if postgres else sa.func.instr
    query = (sa.select(m.c.conversation_id, m.c.id, m.c.text, m.c.ts)
             .join(c, c.c.id == m.c.conversation_id)
             .where(exact_position(_ascii_lower(m.c.text, postgres), q.translate(_ASCII_FOLD)) > 0,
                    c.c.purged_at.is_(None), visible.where(c))
             .limit(limit))
    if postgres:
        if cjk_pair:
            query = query.where(m.c.grams != "", sa.text("string_to_array(messages.grams, ' ') @> ARRAY[CAST(:gram AS TEXT)]")
                                .bindparams(gram=q))
        elif len(q) >= 3:
            escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(m.c.text.ilike(f"%{escaped}%", escape="\\"))
        query = query.order_by(m.c.pk.desc())
    elif cjk_pair or len(q) >= 3:
        # Driven by the FTS5 index in rowid order, so LIMIT stops the scan early.
        name = "messages_grams" if cjk_pair else "messages_trigram"
        tokens = [q] if cjk_pair else list(dict.fromkeys(q[i:i + 3] for i in range(len(q) - 2)))
        match = " AND ".join('"' + t.replace('"', '""') + '"' for t in tokens)
        fts = sa.table(name, sa.column("rowid"))
        query = (query.join(fts, fts.c.rowid == m.c.pk)
                 .where(sa.text(f"{name} MATCH :fts").bindparams(fts=match))
                 .order_by(fts.c.rowid.desc()))
    else:
        query = query.order_by(m.c.pk.desc())
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [{"conversation_id": r[0], "message_id": r[1], "text": r[2], "ts": r[3]} for r in rows]
