"""Evidence: export a conversation's hash chain as a bundle, verify a bundle or the whole
archive, and anchor the chains' heads (docs/evidence.md; the arithmetic is evidence_chain.py).

Chains are per conversation, with their heads anchored: a bundle for one dispute
carries one conversation and nothing of anyone else's transcript, and retention can
purge a conversation's text without touching another chain.  What a single global
chain would add — that no conversation can be rewritten consistently after the fact
— the anchors give: every `archive.heads_interval` the writer records the heads that
moved ([conversation, length, link hash] ...), hashes them chained to the previous
anchor, and logs the anchor's hash ("evidence chain heads") for an operator to keep
elsewhere.  Verification recomputes each anchor from the links, so a chain rewritten
from some message on no longer matches an anchor logged before.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.archive import schema
from storage.archive.evidence_chain import GENESIS, anchor_hash, canonical_message, digest, link_hash

log = logging.getLogger("kefu.archive")

FORMAT = "kefu-evidence/1"
_l, _m, _c, _a = schema.evidence_links, schema.messages, schema.conversations, schema.evidence_anchors


@dataclass(slots=True)
class Verdict:
    ok: bool
    links: int = 0  # links checked
    conversation_id: str | None = None  # where the first broken link is
    message_id: str | None = None  # the first broken link's message
    reason: str = ""


def _message(row: Any) -> dict:
    return canonical_message(id=row.id, conversation_id=row.conversation_id, direction=row.direction,
                             sender_kind=row.sender_kind, sender_id=row.sender_id, sender_name=row.sender_name,
                             text=row.text, attachments=json.loads(row.attachments or "[]"), ts=row.ts)


def _links_query() -> sa.Select:
    """Every link with the message stored at its place (NULL once purged), in chain order."""
    return (sa.select(_l.c.conversation_id, _l.c.seq, _l.c.message_id, _l.c.digest, _l.c.hash,
                      _m.c.id, _m.c.direction, _m.c.sender_kind, _m.c.sender_id, _m.c.sender_name, _m.c.text,
                      _m.c.attachments, _m.c.ts, _c.c.purged_at)
            .select_from(_l.join(_c, _c.c.id == _l.c.conversation_id)
                         .outerjoin(_m, sa.and_(_m.c.conversation_id == _l.c.conversation_id, _m.c.seq == _l.c.seq)))
            .order_by(_l.c.conversation_id, _l.c.seq))


def _anchor_json(row: Any) -> dict:
    return {"id": row.pk, "ts": row.ts, "prev": row.prev, "hash": row.hash, "heads": json.loads(row.heads)}


async def export_bundle(engine: AsyncEngine, cid: str) -> dict | None:
    """The self-contained bundle of one conversation (None if unknown or purged)."""
    async with engine.connect() as conn:
        conv = (await conn.execute(sa.select(_c).where(_c.c.id == cid, _c.c.purged_at.is_(None)))).first()
        if conv is None:
            return None
        rows = (await conn.execute(_links_query().where(_l.c.conversation_id == cid))).all()
        anchors = (await conn.execute(sa.select(_a).where(_a.c.heads.contains(json.dumps(cid), autoescape=True))
                                      .order_by(_a.c.pk))).all()
    links = [{"seq": r.seq, "message_id": r.message_id, "digest": r.digest, "hash": r.hash,
              "message": _message(r) if r.id is not None else None} for r in rows]
    return {"format": FORMAT, "conversation_id": cid, "exported_at": time.time(),
            "conversation": {"channel": conv.channel, "customer_id": conv.customer_id, "opened_at": conv.opened_at,
                             "closed_at": conv.closed_at},
            "genesis": GENESIS, "links": links, "head": links[-1]["hash"] if links else GENESIS,
            "anchors": [_anchor_json(a) for a in anchors]}


class _Chain:
    """Walks links of one conversation after another, remembering each link's hash
    (anchors are checked against them)."""

    def __init__(self) -> None:
        self.cid: str | None = None
        self.prev = GENESIS
        self.expected_seq = 1
        self.count = 0

    def step(self, cid: str, seq: int, message_id: str, link_digest: str, link: str,
             message: dict | None) -> str | None:
        """The reason this link is broken, or None."""
        if cid != self.cid:
            self.cid, self.prev, self.expected_seq = cid, GENESIS, 1
        self.count += 1
        if seq != self.expected_seq:
            return f"link {self.expected_seq} is missing"
        self.expected_seq += 1
        if message is not None:
            if message.get("id") != message_id:
                return f"another message ({message.get('id')}) is at its place: the order was changed"
            if digest(message) != link_digest:
                return "the message differs from what was chained (text, sender, attachments or time changed)"
        if link_hash(self.prev, link_digest) != link:
            return "the link does not follow the previous one (order changed or a link removed)"
        self.prev = link
        return None


def verify_bundle(bundle: dict) -> Verdict:
    """Check a bundle written by `export_bundle` (or one tampered with since)."""
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT or not isinstance(bundle.get("links"), list):
        return Verdict(False, reason=f"not a {FORMAT} bundle")
    cid = str(bundle.get("conversation_id"))
    chain = _Chain()
    hashes: dict[int, str] = {}
    for link in bundle["links"]:
        try:
            why = chain.step(cid, link["seq"], link["message_id"], link["digest"], link["hash"], link.get("message"))
        except (KeyError, TypeError, AttributeError):
            return Verdict(False, chain.count, cid, None, "a link is malformed")
        if why is not None:
            return Verdict(False, chain.count, cid, link["message_id"], why)
        hashes[link["seq"]] = link["hash"]
    if bundle["links"] and bundle.get("head") != chain.prev:
        return Verdict(False, chain.count, cid, bundle["links"][-1]["message_id"], "the head is not the last link")
    for anchor in bundle.get("anchors") or ():
        if anchor_hash(anchor["prev"], anchor["heads"]) != anchor["hash"]:
            return Verdict(False, chain.count, cid, None, f"anchor {anchor['hash']} does not match its heads")
        for head_cid, seq, h in anchor["heads"]:
            if head_cid == cid and hashes.get(seq) != h:
                return Verdict(False, chain.count, cid, _message_at(bundle["links"], seq),
                               f"the chain differs from anchor {anchor['hash']}")
    return Verdict(True, chain.count, cid)


def _message_at(links: list[dict], seq: int) -> str | None:
    return next((x["message_id"] for x in links if x["seq"] == seq), None)


async def verify_archive(engine: AsyncEngine) -> Verdict:
    """Check every chain in the archive, every stored message against its link, and every anchor."""
    chain = _Chain()
    hashes: dict[tuple[str, int], tuple[str, str]] = {}  # anchored places only
    async with engine.connect() as conn:
        anchors = (await conn.execute(sa.select(_a).order_by(_a.c.pk))).all()
        wanted = {(c, s) for a in anchors for c, s, _ in json.loads(a.heads)}
        result = await conn.stream(_links_query().execution_options(yield_per=2000))
        async for r in result:
            message = _message(r) if r.id is not None else None
            if message is None and r.purged_at is None:
                return Verdict(False, chain.count + 1, r.conversation_id, r.message_id, "the message is missing")
            why = chain.step(r.conversation_id, r.seq, r.message_id, r.digest, r.hash, message)
            if why is not None:
                return Verdict(False, chain.count, r.conversation_id, r.message_id, why)
            if (r.conversation_id, r.seq) in wanted:
                hashes[(r.conversation_id, r.seq)] = (r.hash, r.message_id)
        stray = (await conn.execute(
            sa.select(_m.c.conversation_id, _m.c.id).select_from(_m.outerjoin(
                _l, sa.and_(_l.c.conversation_id == _m.c.conversation_id, _l.c.seq == _m.c.seq)))
            .where(_l.c.seq.is_(None)).limit(1))).first()
    if stray is not None:
        return Verdict(False, chain.count, stray[0], stray[1], "a message that is in no chain")
    prev = GENESIS
    for a in anchors:
        heads = json.loads(a.heads)
        if a.prev != prev or anchor_hash(a.prev, heads) != a.hash:
            return Verdict(False, chain.count, None, None, f"anchor {a.hash} does not match its heads")
        for cid, seq, h in heads:
            found = hashes.get((cid, seq))
            if found is None or found[0] != h:
                return Verdict(False, chain.count, cid, found[1] if found else None,
                               f"the chain differs from anchor {a.hash}")
        prev = a.hash
    return Verdict(True, chain.count)


async def anchor_heads(engine: AsyncEngine, now: float | None = None) -> dict | None:
    """Record and log the heads of the chains that grew since the last anchor (the
    writer's process runs this every `archive.heads_interval`); None if none grew."""
    now = time.time() if now is None else now
    async with engine.begin() as conn:
        moved = (await conn.execute(sa.select(_c.c.id, _c.c.message_count, _c.c.head_hash)
                                    .where(_c.c.message_count > _c.c.anchored_seq).order_by(_c.c.id))).all()
        if not moved:
            return None
        prev = (await conn.execute(sa.select(_a.c.hash).order_by(_a.c.pk.desc()).limit(1))).scalar() or GENESIS
        heads = [[cid, seq, h] for cid, seq, h in moved]
        anchor = {"ts": now, "prev": prev, "hash": anchor_hash(prev, heads), "heads": json.dumps(heads)}
        await conn.execute(_a.insert(), anchor)
        await conn.execute(sa.update(_c).where(_c.c.id == sa.bindparam("cid"))
                           .values(anchored_seq=sa.bindparam("seq")),
                           [{"cid": cid, "seq": seq} for cid, seq, _ in heads])
    log.info("evidence chain heads", extra={"anchor": anchor["hash"], "prev": prev, "conversations": len(heads),
                                            "at": now})
    return anchor
