"""Agents answering from QQ (a QQ channel's ``agents.mode``: private or group).

* An agent's QQ account is theirs through ``qq_id`` in config.yaml or a one-time
  code: ``/link CODE`` sent to the bot (code from the console / POST /api/link_code).
* private mode: every conversation assigned to an agent (from any channel) is
  pushed into the agent's private chat with the bot — a header with a tag
  (``#a1b2``), channel, customer, role, tier and the recent history — followed by
  the customer's later messages and the replies others send from the console.
* group mode: the same, for every open conversation of ``agents.roles`` (all
  when not set), into the agents' QQ group.  Only what an agent may see is
  relayed (routing/permissions.py), and card, mobile and ID numbers are masked
  (routing/masking.py).
* The agent answers by quoting (reply segment) any relayed message, or with
  ``#a1b2 text``.  Commands, with a quote or a tag to pick the conversation:
  ``/claim``, ``/close``, ``/transfer <role|agent>``, ``/q <quick reply>``, ``/who``;
  ``/help`` anywhere.
* SLA reminders for a relayed conversation are pushed there too; automatic (bot)
  texts are not pushed one by one (the header and /who show them).
* Everything goes through `AgentActions` (via="qq"), so the console's ownership
  rules apply and the console's history shows the reply; a refusal is answered
  with the same sentence the console shows.  The customer only sees the agent's
  name, on the customer's own channel.

Relays are live pushes, not the durable path: a relay missed while the
bot was offline is not re-sent, but /who shows the recent history.  Several kefu
processes relay each message once (Redis markers); only a process holding the
OneBot connection relays.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import re
from typing import TYPE_CHECKING, Any

from connectors.base import DeliveryError
from connectors.qq.transport import Target
from routing.actions import refusal
from routing.masking import mask_text
from routing.permissions import Audience, may_see
from storage.conversations import ConversationError
from storage.events import BrokenEvent, Event

if TYPE_CHECKING:
    from connectors.qq.connector import QQConnector
    from routing.config import AgentConfig

MAP_TTL = 30 * 86400
HISTORY = 5  # messages in a relay header and in /who
TAG_RE = re.compile(r"^\s*#([0-9a-fA-F]{3,12})(?![0-9a-zA-Z])\s*")
LINK_RE = re.compile(r"^\s*/link(?:\s+(\S+))?\s*$", re.IGNORECASE)

HELP = ("Answer a customer by quoting a relayed message or with \"#tag text\".\n"
        "Commands (quote or #tag first): /claim  /close  /transfer <role|agent>  "
        "/q <quick reply>  /who\n"
        "Link this QQ to your agent account: /link CODE (code from the console).")


def _tkey(target: Target) -> str:
    return ("u" if target[0] == "private" else "g") + str(target[1])


def _short(text: str, n: int = 200) -> str:
    text = mask_text(text).replace("\r", "")
    return text if len(text) <= n else text[: n - 1] + "…"


class AgentBridge:
    def __init__(self, conn: QQConnector):
        self.c = conn
        self.cfg = conn.config.agents
        self.name = conn.name
        self.keys = conn.ctx.keys
        self.redis = conn.ctx.redis
        relay = conn.ctx.relay
        assert relay is not None, "the QQ connector relays agents: it needs a RelayContext"
        self.actions = relay.actions
        self.store = relay.store
        self.log = conn.log
        relay.on_live(self.on_live_event)
        self.audience = Audience(self.cfg.roles)  # who reads the agents' group
        self._live: asyncio.Queue = asyncio.Queue(maxsize=5000)

    # -- live events → relays ------------------------------------------------------
    async def on_live_event(self, data: bytes) -> None:
        """Fanout listener: never blocks the fanout loop, the worker sends."""
        if self.c.state != "running":
            return
        try:
            self._live.put_nowait(data)
        except asyncio.QueueFull:
            self.log.warning("QQ relay queue full, live event dropped")

    async def worker(self) -> None:
        while True:
            data = await self._live.get()
            if not self.c.ready:
                continue  # no OneBot connection here (another process may hold it)
            try:
                await self.handle_live(json.loads(data))
            except asyncio.CancelledError:
                raise
            except DeliveryError as exc:
                self.log.warning("relay to QQ agents failed", extra={"error": str(exc)})
            except Exception:
                self.log.exception("relay to QQ agents failed")

    async def handle_live(self, payload: dict) -> None:
        if payload.get("type") == "conversation" and isinstance(payload.get("conversation"), dict):
            await self._on_conversation(payload["conversation"])
        elif payload.get("type") == "message" and isinstance(payload.get("message"), dict):
            await self._on_message(str(payload.get("conversation_id") or payload["message"].get("conversation_id")),
                                   payload["message"])
        elif payload.get("type") == "reminder" and payload.get("conversation_id"):
            await self._on_reminder(payload)

    async def _on_reminder(self, payload: dict) -> None:
        """The owner is reminded that the customer waits (SLA reminder) where they answer."""
        cid = str(payload["conversation_id"])
        conv = await self.store.get(cid, messages=False)
        if conv is None:
            return
        minutes = max(1, round(float(payload.get("waiting_seconds") or 0) / 60))
        for target in await self.targets(conv):
            mark = self.keys.qq_relay_done(self.name, f"reminder:{cid}:{minutes}", _tkey(target))
            if await self.redis.set(mark, "1", nx=True, ex=86400):
                tag = await self.tag(cid)
                who = mask_text((conv.get("customer") or {}).get("name") or "the customer")
                await self._say(target, f"#{tag} ⏰ {who} has waited {minutes} min for an answer · 客户已等待 {minutes} 分钟")

    async def agent_qq(self, agent_id: str | None) -> str | None:
        agent = self.actions.agent(agent_id) if agent_id else None
        if agent is None:
            return None
        qq = self.actions.chat_account("qq", agent)
        if qq:
            return qq
        raw = await self.redis.get(self.keys.qq_agent_account(self.name, agent.id))
        return raw.decode() if raw else None

    async def targets(self, conv: dict) -> list[Target]:
        """Where a conversation is relayed: only to whom may see it."""
        if conv.get("status") != "open":
            return []
        if self.cfg.mode == "group":
            if self.cfg.group_id is None or not may_see(self.audience, conv):
                return []
            return [("group", int(self.cfg.group_id))]
        owner = self.actions.agent(conv.get("assignee") or "")
        qq = await self.agent_qq(owner.id) if owner is not None and may_see(owner, conv) else None
        return [("private", int(qq))] if qq and qq.isdigit() else []

    async def tag(self, cid: str) -> str:
        ck = self.keys.qq_conv_tag(self.name, cid)
        raw = await self.redis.get(ck)
        if raw:
            return raw.decode()
        digest = hashlib.sha1(cid.encode()).hexdigest()
        for n in range(4, len(digest) + 1):
            t = digest[:n]
            tk = self.keys.qq_tag(self.name, t)
            if await self.redis.set(tk, cid, nx=True, ex=MAP_TTL) or await self.redis.get(tk) == cid.encode():
                await self.redis.set(ck, t, ex=MAP_TTL)
                return t
        return digest

    async def resolve_tag(self, tag: str) -> str | None:
        raw = await self.redis.get(self.keys.qq_tag(self.name, tag.lower()))
        return raw.decode() if raw else None

    async def _on_conversation(self, conv: dict) -> None:
        cid = conv["id"]
        new = conv.get("assignee") or ""
        state = f"{conv.get('status')}|{new}"
        old = await self.redis.set(self.keys.qq_owner(self.name, cid), state, ex=MAP_TTL, get=True)
        old = old.decode() if old else None
        if old == state:
            return  # nothing an agent should hear about (or another process announced it)
        _, _, old_assignee = (old or "|").partition("|")
        relayed_key = self.keys.qq_relayed(self.name, cid)
        if conv.get("status") == "closed":
            if await self.redis.exists(relayed_key):
                await self._closed(conv, await self.tag(cid))
            return
        new_name = self._agent_name(new) if new else "the queue · 排队中"
        if self.cfg.mode == "private":
            if old_assignee and old_assignee != new:
                oq = await self.agent_qq(old_assignee)
                nq = await self.agent_qq(new) if new else None
                if oq and oq != nq and await self.redis.srem(relayed_key, f"u{oq}"):
                    tag = await self.tag(cid)
                    await self._say(("private", int(oq)), f"#{tag} moved to {new_name} · 已转给 {new_name}")
            for target in await self.targets(conv):
                await self.ensure_header(conv, target)
        else:
            targets = await self.targets(conv)
            for target in targets:
                if not await self.ensure_header(conv, target) and old is not None and old_assignee != new:
                    await self._say(target, f"#{await self.tag(cid)} → {new_name}")
            group: Target | None = ("group", int(self.cfg.group_id)) if self.cfg.group_id is not None else None
            if group is not None and group not in targets and await self.redis.srem(relayed_key, _tkey(group)):
                await self._say(group, f"#{await self.tag(cid)} → {conv.get('role') or '-'} · "
                                       "no longer relayed here · 已转出本群")

    def _agent_name(self, agent_id: str) -> str:
        a = self.actions.agent(agent_id)
        return a.name if a else agent_id

    async def ensure_header(self, conv: dict, target: Target) -> bool:
        """Push the conversation's header (with recent history) to `target` once."""
        cid = conv["id"]
        relayed_key = self.keys.qq_relayed(self.name, cid)
        if not await self.redis.sadd(relayed_key, _tkey(target)):
            return False
        await self.redis.expire(relayed_key, MAP_TTL)
        full = await self.store.get(cid, limit=HISTORY) or conv
        tag = await self.tag(cid)
        cust = full.get("customer") or {}
        who = mask_text(cust.get("name") or cust.get("id") or "?")
        owner = self._agent_name(full["assignee"]) if full.get("assignee") else "unassigned"
        lines = [f"#{tag} · {full.get('channel')} · {who} · {full.get('role') or '-'} · "
                 + f"{cust.get('tier') or 'new'} · {owner}"]
        messages = full.get("messages") or []
        for m in messages:
            lines.append(f"  {m['sender'].get('name') or m['sender'].get('kind')}: {_short(m['text'])}")
        lines.append(f"Quote this message or send \"#{tag} text\" to answer · 引用本消息或发送 #{tag} 内容 回复")
        if messages:
            pipe = self.redis.pipeline(transaction=False)
            for m in messages:
                pipe.set(self.keys.qq_relay_done(self.name, m["id"], _tkey(target)), "1", nx=True, ex=7 * 86400)
            await pipe.execute()
        segs = [{"type": "text", "data": {"text": "\n".join(lines)}}]
        segs += await self.c.outbound.media_segments([a for m in messages if m["sender"].get("kind") != "bot"
                                             for a in m.get("attachments") or []], sep="\n")
        try:
            await self.c.outbound.send_remembered(target, segs, {"cid": cid, "to": "agent"}, attempts=2)
        except DeliveryError:
            await self.redis.srem(relayed_key, _tkey(target))
            raise
        return True

    async def _on_message(self, cid: str, msg: dict) -> None:
        conv = await self.store.get(cid, messages=False)
        if conv is None:
            return
        targets = await self.targets(conv)
        if not targets:
            return
        sender = msg.get("sender") or {}
        if sender.get("kind") == "bot":
            return  # automatic texts: in the header and /who, not pushed one by one
        via = None
        if msg.get("direction") == "out" and sender.get("kind") == "agent":
            blob = await self.redis.hget(self.keys.conversation_messages(cid), msg["id"])
            if blob:
                try:
                    via = Event.decode(blob).meta.get("via")
                except BrokenEvent:
                    pass
        sender_qq = await self.agent_qq(sender.get("id")) if via == "qq" else None
        for target in targets:
            if via == "qq" and (target[0] == "group" or str(target[1]) == sender_qq):
                continue  # the agent wrote it there: no echo
            if await self.ensure_header(conv, target):
                continue  # the header carried this message
            if not await self.redis.set(self.keys.qq_relay_done(self.name, msg["id"], _tkey(target)), "1",
                                        nx=True, ex=7 * 86400):
                continue
            tag = await self.tag(cid)
            name = sender.get("name") or sender.get("kind") or ""
            segs: list[dict] = [{"type": "text", "data": {"text": f"#{tag} {name}: {_short(msg.get('text') or '', 2500)}"}}]
            segs += await self.c.outbound.media_segments(msg.get("attachments") or [], sep="\n")
            await self.c.outbound.send_remembered(target, segs, {"cid": cid, "id": msg["id"], "to": "agent"}, attempts=2)

    # -- agents' messages → actions --------------------------------------------------
    async def on_private_message(self, ev: dict, msg: dict, pmid: str) -> bool:
        """True if the private message was an agent's (or a /link) and is handled."""
        uid = int(ev["user_id"])
        link = LINK_RE.match(msg["text"])
        if link:
            await self._link(uid, link.group(1), ("private", uid), ev.get("message_id"))
            return True
        agent = await self.actions.linked_agent("qq", uid)
        if agent is None:
            return False
        await self._agent_input(agent, ("private", uid), ev, msg, pmid)
        return True

    async def on_group_message(self, ev: dict, msg: dict, pmid: str) -> None:
        if self.cfg.mode != "group" or str(ev.get("group_id")) != str(self.cfg.group_id):
            return
        text = msg["text"]
        quoted = await self.c.outbound.recall(msg["reply_to"])
        addressed = ((quoted and quoted.get("to") == "agent") or TAG_RE.match(text) or text.lstrip().startswith("/")
                     or (self.c.self_id is not None and self.c.self_id in msg["at"]))
        if not addressed:
            return  # the team talking among themselves
        where: Target = ("group", int(ev["group_id"]))
        uid = int(ev["user_id"])
        link = LINK_RE.match(text)
        if link:
            await self._link(uid, link.group(1), where, ev.get("message_id"))
            return
        agent = await self.actions.linked_agent("qq", uid)
        if agent is None:
            await self._say(where, "This QQ is not linked to an agent: send /link CODE (code from the console).",
                            ev.get("message_id"))
            return
        await self._agent_input(agent, where, ev, msg, pmid)

    async def _link(self, uid: int, code: str | None, where: Target, quote: Any) -> None:
        agent = await self.actions.redeem_link_code(code, "qq", str(uid)) if code else None
        if agent is None:
            await self._say(where, "That link code is unknown or expired: get a new one in the console.", quote)
            return
        await self.redis.set(self.keys.qq_agent_account(self.name, agent.id), str(uid))
        self.log.info("QQ account linked", extra={"agent": agent.id})
        await self._say(where, f"Linked: this QQ answers as {agent.name} ({agent.id}).\n{HELP}", quote)

    async def _agent_input(self, agent: AgentConfig, where: Target, ev: dict, msg: dict, pmid: str) -> None:
        marker = self.keys.qq_agent_msg(self.name, pmid)
        if not await self.redis.set(marker, "1", nx=True, ex=self.c.ctx.settings.bus.dedupe_ttl):
            return  # OneBot re-sent an event already acted on
        try:
            await self._act(agent, where, ev, msg)
        except BaseException:
            await self.redis.delete(marker)  # not acted on: a re-sent event may try again
            raise

    async def _act(self, agent: AgentConfig, where: Target, ev: dict, msg: dict) -> None:
        quote = ev.get("message_id")
        text = "" if msg["placeholder"] else msg["text"]
        cid = None
        quoted = await self.c.outbound.recall(msg["reply_to"])
        if quoted and quoted.get("to") == "agent" and quoted.get("cid"):
            cid = quoted["cid"]
        m = TAG_RE.match(text)
        if m:
            cid = await self.resolve_tag(m.group(1))
            if cid is None:
                await self._say(where, f"No conversation #{m.group(1)}.", quote)
                return
            text = text[m.end():]
        text = text.strip()
        cmd, arg = "", ""
        if text.startswith("/"):
            head, _, arg = text.partition(" ")
            cmd, arg = head.lower(), arg.strip()
        if cmd in ("/help", "/start", "/h"):
            await self._say(where, HELP, quote)
            return
        if cid is None:
            if where[0] == "private":
                await self._say(where, "Which conversation? Quote a relayed message or start with #tag.\n" + HELP,
                                quote)
            return
        tag = await self.tag(cid)
        try:
            if cmd == "/claim":
                await self.actions.claim(agent, cid, via="qq")
                await self._say(where, f"#{tag} is yours now · 已认领", quote)
            elif cmd == "/close":
                conv = await self.actions.close(agent, cid, via="qq")
                await self._closed(conv, tag, where)
                await self._say(where, f"#{tag} closed · 已关闭", quote)
            elif cmd == "/transfer":
                if not arg:
                    await self._say(where, "Usage: /transfer <role|agent>", quote)
                    return
                if self.actions.agent(arg) is not None:
                    conv = await self.actions.transfer(agent, cid, to_agent=arg, via="qq")
                else:
                    conv = await self.actions.transfer(agent, cid, role=arg, via="qq")
                dest = self._agent_name(conv["assignee"]) if conv.get("assignee") else f"{arg} (queue)"
                await self._say(where, f"#{tag} transferred to {dest} · 已转接", quote)
            elif cmd == "/q":
                if not arg:
                    names = ", ".join(q.name for q in self.c.ctx.settings.quick_replies) or "none"
                    await self._say(where, f"Quick replies: {names}", quote)
                    return
                sent = await self.actions.reply(agent, cid, "/q " + arg, via="qq")
                await self._say(where, f"#{tag} sent: {_short(sent['text'], 500)}", quote)
            elif cmd == "/who":
                await self._say(where, await self.who(agent, cid, tag), quote)
            elif cmd:
                await self._say(where, f"Unknown command {cmd}.\n{HELP}", quote)
            elif text or msg["attachments"]:
                files, problem = await self.c.outbound.keep_files(msg["attachments"])
                if problem:
                    await self._say(where, f"#{tag} not sent: {problem}", quote)
                    return
                await self.actions.reply(agent, cid, text, via="qq", attachments=files)
        except ConversationError as exc:
            await self._say(where, f"#{tag} not done: {refusal(exc)[1]}", quote)

    async def _closed(self, conv: dict, tag: str, actor: Target | None = None) -> None:
        """Tell every target the conversation was relayed to, but the actor (told directly)."""
        cid = conv["id"]
        await self.redis.set(self.keys.qq_owner(self.name, cid),
                             f"{conv.get('status')}|{conv.get('assignee') or ''}", ex=MAP_TTL)
        relayed_key = self.keys.qq_relayed(self.name, cid)
        targets = [t.decode() for t in await self.redis.smembers(relayed_key)]
        await self.redis.delete(relayed_key)
        for t in targets:
            if actor is None or t != _tkey(actor):
                await self._say(("private" if t[0] == "u" else "group", int(t[1:])), f"#{tag} closed · 已关闭")

    async def who(self, agent: AgentConfig, cid: str, tag: str) -> str:
        conv = await self.actions.view(agent, cid, via="qq", limit=HISTORY)
        cust = conv.get("customer") or {}
        owner = self._agent_name(conv["assignee"]) if conv.get("assignee") else "-"
        lines = [f"#{tag} · {conv.get('channel')} · {mask_text(cust.get('name') or '-')} (id {cust.get('id')})",
                 (f"tier {cust.get('tier') or 'new'} · role {conv.get('role') or '-'} · owner {owner} · "
                  f"{conv.get('status')} · priority {conv.get('priority') or 'normal'}")]
        attrs = cust.get("attributes") or {}
        if attrs:
            lines.append("  " + ", ".join(f"{k}={_short(str(v), 60)}" for k, v in list(attrs.items())[:8]))
        for m in conv.get("messages") or []:
            lines.append(f"  {m['sender'].get('name') or m['sender'].get('kind')}: {_short(m['text'], 150)}")
        return "\n".join(lines)

    async def _say(self, where: Target, text: str, quote: Any = None) -> None:
        segs: list[dict] = []
        if quote is not None:
            segs.append({"type": "reply", "data": {"id": str(quote)}})
        segs.append({"type": "text", "data": {"text": text}})
        m = TAG_RE.match(text)
        cid = await self.resolve_tag(m.group(1)) if m else None
        try:  # a quote of an answer about a conversation picks that conversation too
            await self.c.outbound.send_remembered(where, segs, {"cid": cid, "to": "agent"} if cid else {}, attempts=2)
        except DeliveryError as exc:
            self.log.warning("answer to QQ agent not sent", extra={"error": str(exc)})
