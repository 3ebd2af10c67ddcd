"""Agents answering from Telegram (the agent side of the Telegram connector).

An agent's Telegram account is theirs when config.yaml says so (`telegram_id`)
or after they sent ``/link CODE`` (a one-time code from the console) to the bot.

Relaying (done only by the process holding the bot's lease, so nothing is
relayed twice): every change of a conversation, as pushed on the live events
channel, triggers a *sync* of that conversation, which sends what its agent
target has not seen yet.  How far a conversation was relayed is kept in Redis
(``tg_relay``: target chat/topic, cursor in the conversation's message list,
last status/assignee), so a restart, a lost pub/sub message or a new lease
holder resumes exactly there; a sweep over open conversations catches up what
the live events missed.  Messages waiting while a chat is rate-limited are
merged into one Telegram message.

- private mode: a conversation assigned to a linked agent is pushed into the
  agent's private chat with a header (channel · customer · role · tier ·
  #tag), followed by the later customer messages, console replies and bot
  messages.  The agent answers by replying (reply-to) to any of those messages
  (Telegram message id → conversation id is kept in Redis).
- team mode: the agents' forum supergroup gets one topic per open
  conversation (recreated when deleted); a message in the topic is the reply.
  All relayed messages share the group's 20 msg/min, so they are merged.
  The bot must be an admin of the group with "manage topics" (and see all
  messages: admin, or privacy mode off in @BotFather).

Which mode: private suits small teams (1–5 agents) — each agent's chat has its
own rate budget and holds only their conversations.  team suits larger teams
that want to see and pick up each other's work — but the whole group shares
20 messages a minute, so under load relayed messages arrive merged and later.
A Telegram customer's photos and files are re-sent to the agent by file_id;
card, mobile and ID numbers are masked in everything relayed
(routing/masking.py).  Only what an agent may see is relayed
(routing/permissions.py): in private mode a conversation goes to the agent it
is assigned to; in team mode the group gets the conversations of
``agents.roles`` (all when not set), and a conversation transferred out of
them is announced once and then no longer relayed there.

Commands (private: as a reply to a relayed message; team: in the topic):
``/claim``, ``/close``, ``/transfer <role|agent>``, ``/q <quick reply>``,
``/who``; ``/link CODE`` and ``/help`` anywhere.  Every action goes through
AgentActions, so ownership is the console's: a reply to a conversation another
agent owns is refused with the explanation the console shows.
"""
from __future__ import annotations

import asyncio
import json
import re
from typing import TYPE_CHECKING, Any

from telegram import Message, Update
from telegram.error import BadRequest, Forbidden, TelegramError

from connectors.telegram.codec import platform_id
from routing.actions import refusal
from routing.masking import mask_text
from routing.permissions import Audience, may_see
from storage.conversations import ConversationError
from storage.events import BrokenEvent, Event

if TYPE_CHECKING:
    from routing.config import AgentConfig
    from connectors.telegram.connector import TelegramConnector

HISTORY = 5  # messages shown under the header when a conversation reaches a new target
SWEEP_INTERVAL = 15.0  # s between catch-up sweeps over open conversations
DONE_TTL = 3 * 86400

HELP = ("kefu bot — commands:\n"
        "/claim · /close · /transfer <role|agent> · /q <quick reply> · /who\n"
        "{where}\n"
        "/link CODE links this Telegram account to your kefu agent (code from the console).")
WHERE = {
    "private": "Reply to a relayed message to answer that customer; use the commands as such a reply too.",
    "team": "Write in a conversation's topic of the agents' group to answer; the commands work there too.",
    "off": "Answering from Telegram is not enabled for this bot.",
}


def tag(cid: str) -> str:
    """Short conversation tag shown to agents (#a1b2c3)."""
    return cid[-6:]


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else ("" if v is None else str(v))


def parse_command(text: str) -> tuple[str | None, str]:
    m = re.match(r"^/([A-Za-z_]+)(?:@\w+)?(?:\s+(.*))?$", text.strip(), re.S)
    if not m:
        return None, text
    return m.group(1).lower(), (m.group(2) or "").strip()


class TelegramAgentBridge:
    def __init__(self, conn: "TelegramConnector"):
        self.conn = conn
        self.ctx = conn.ctx
        relay = conn.ctx.relay
        assert relay is not None, "the Telegram connector relays agents: it needs a RelayContext"
        self.store, self.actions = relay.store, relay.actions
        self.cfg = conn.config.agents
        self.mode = self.cfg.mode
        self.keys = conn.ctx.keys
        self.redis = conn.ctx.redis
        self.ch = conn.name
        self.log = conn.log
        self.audience = Audience(self.cfg.roles)  # who reads the team group
        self._running: dict[str, asyncio.Task] = {}
        self._dirty: set[str] = set()
        self._sweeper: asyncio.Task | None = None
        if self.mode != "off":
            relay.on_live(self.on_event)

    async def linked_agent(self, user_id: int | str) -> AgentConfig | None:
        """The agent a Telegram account belongs to (config.yaml, or linked with /link)."""
        return await self.actions.linked_agent("telegram", user_id)

    # -- leadership -----------------------------------------------------------------
    def became_leader(self) -> None:
        if self.mode != "off" and (self._sweeper is None or self._sweeper.done()):
            self._sweeper = asyncio.create_task(self._sweep_loop(), name=f"tg-sweep-{self.ch}")

    def lost_leadership(self) -> None:
        self._cancel_all()

    async def stop(self) -> None:
        tasks = self._cancel_all()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _cancel_all(self) -> list[asyncio.Task]:
        tasks = [t for t in [self._sweeper, *self._running.values()] if t is not None]
        for t in tasks:
            t.cancel()
        self._sweeper = None
        self._running.clear()
        self._dirty.clear()
        return tasks

    async def _sweep_loop(self) -> None:
        while True:
            try:
                await self._sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.log.warning("telegram relay sweep failed", extra={"channel": self.ch, "error": str(exc)})
            await asyncio.sleep(SWEEP_INTERVAL)

    async def _sweep(self) -> None:
        """Kick the open conversations whose relay is behind (cheap check, pipelined)."""
        cids = [_s(c) for c in await self.redis.zrevrange(self.keys.open_conversations, 0, 4999)]
        for i in range(0, len(cids), 500):
            chunk = cids[i:i + 500]
            pipe = self.redis.pipeline(transaction=False)
            for cid in chunk:
                pipe.llen(self.keys.conversation_order(cid))
                pipe.hmget(self.keys.tg_relay(self.ch, cid), "cursor", "agent")
                pipe.hget(self.keys.conversation(cid), "assignee")
            res = await pipe.execute()
            for j, cid in enumerate(chunk):
                total, (cursor, agent), assignee = res[3 * j], res[3 * j + 1], res[3 * j + 2]
                if int(_s(cursor) or -1) != int(total) or _s(agent) != _s(assignee):
                    self.kick(cid)

    # -- live events → syncs ----------------------------------------------------------
    async def on_event(self, data: bytes) -> None:
        if not self.conn.leader or self.conn.client.bot is None:
            return
        try:
            ev = json.loads(data)
        except ValueError:
            return
        cid = ev.get("conversation_id") or (ev.get("conversation") or {}).get("id")
        if isinstance(cid, str) and cid:
            self.kick(cid)

    def kick(self, cid: str) -> None:
        task = self._running.get(cid)
        if task is not None and not task.done():
            self._dirty.add(cid)
            return
        self._running[cid] = asyncio.create_task(self._sync_loop(cid))

    async def _sync_loop(self, cid: str) -> None:
        me = asyncio.current_task()
        try:
            while True:
                self._dirty.discard(cid)
                try:
                    await self.sync(cid)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the sweep retries
                    self.log.warning("telegram relay failed", extra={
                        "channel": self.ch, "conversation": cid, "error": f"{type(exc).__name__}: {exc}"[:300]})
                    return
                if cid not in self._dirty:
                    return
        finally:
            if self._running.get(cid) is me:
                del self._running[cid]

    # -- syncing one conversation -------------------------------------------------------
    async def sync(self, cid: str) -> None:
        if self.conn.client.bot is None or not self.conn.leader:
            return
        conv = await self.store.get(cid, messages=False)
        if conv is None:
            return
        rk = self.keys.tg_relay(self.ch, cid)
        st = {_s(k): _s(v) for k, v in (await self.redis.hgetall(rk)).items()}
        if self.mode == "private":
            await self._sync_private(conv, st, rk)
        elif self.mode == "team":
            await self._sync_team(conv, st, rk)

    async def _pending(self, cid: str, cursor: int) -> tuple[list[Event], int]:
        ids = await self.redis.lrange(self.keys.conversation_order(cid), cursor, cursor + 199)
        return await self._decode(cid, ids), cursor + len(ids)

    async def _recent(self, cid: str) -> tuple[list[Event], int]:
        pipe = self.redis.pipeline(transaction=True)
        pipe.lrange(self.keys.conversation_order(cid), -HISTORY, -1)
        pipe.llen(self.keys.conversation_order(cid))
        ids, total = await pipe.execute()
        return await self._decode(cid, ids), int(total)

    async def _decode(self, cid: str, ids: list) -> list[Event]:
        if not ids:
            return []
        blobs = await self.redis.hmget(self.keys.conversation_messages(cid), ids)
        out = []
        for blob in blobs:
            if blob is None:
                continue
            try:
                out.append(Event.decode(blob))
            except BrokenEvent:
                continue
        return out

    @staticmethod
    def _customer(conv: dict) -> str:
        c = conv["customer"]
        return mask_text(c.get("name") or c.get("id") or "?")

    def _header(self, conv: dict) -> str:
        return " · ".join([conv["channel"], self._customer(conv), conv.get("role") or "—",
                           conv["customer"].get("tier") or "new", "#" + tag(conv["id"])])

    @staticmethod
    def _line(e: Event) -> str:
        files = "".join(f"\n📎 {a.get('name') or 'file'}" for a in e.attachments if isinstance(a, dict))
        if e.sender_kind == "customer":
            who = f"👤 {e.sender_name or 'customer'}"
        elif e.sender_kind == "agent":
            who = f"💬 {e.sender_name or e.sender_id}"
        else:
            who = "🤖 " + (e.sender_name or e.sender_kind)
        return mask_text(f"{who}: {e.text}{files}")  # SPEC: masked in agents' chat apps

    def _telegram_files(self, events: list[Event], target_agent: str | None) -> list[dict]:
        """Attachments to forward as files (those the bot can send: see TelegramFiles.sendable)."""
        return [a for e in events if self._relayable(e, target_agent) for a in e.attachments
                if isinstance(a, dict) and not a.get("error")]

    async def _forward_files(self, chat: int, cid: str, files: list[dict], thread: int | None = None) -> None:
        conn, group = self.conn, chat < 0
        for a in files:
            sendable = await conn.files.sendable(a)
            if sendable is None:
                continue  # not one the bot can send (its name is in the relayed text)
            send, file = sendable
            kw: dict[str, Any] = {"caption": mask_text(f"#{tag(cid)} 📎 {a.get('name') or ''}")[:1024]}
            if thread is not None:
                kw["message_thread_id"] = thread
            try:
                m = await conn.client.call(chat, lambda s=send, f=file, kw=kw: s(chat, f, **kw))
            except TelegramError as exc:
                self.log.info("file not relayed", extra={"channel": self.ch, "error": str(exc)})
                continue
            if not group:
                await self.ctx.refs.remember([platform_id(chat, m.message_id)], {"cid": cid, "to": "agent"})

    def _relayable(self, e: Event, target_agent: str | None) -> bool:
        """Everything but what the target wrote from Telegram itself."""
        if e.sender_kind == "agent" and (e.meta or {}).get("via") == "telegram":
            return self.mode == "private" and e.sender_id != target_agent
        return True

    def _agent_name(self, agent_id: str | None) -> str:
        a = self.actions.agent(agent_id) if agent_id else None
        return a.name if a else (agent_id or "")

    async def agent_chat(self, agent_id: str | None) -> str | None:
        """The private chat (= Telegram user id) of an agent, if linked."""
        a = self.actions.agent(agent_id) if agent_id else None
        if a is None:
            return None
        acct = self.actions.chat_account("telegram", a)
        if acct:
            return acct
        acct = _s(await self.redis.get(self.keys.tg_agent_account(a.id))) or None
        if acct:
            linked = await self.actions.linked_agent("telegram", acct)
            if linked is None or linked.id != a.id:  # re-linked to someone else since
                return None
        return acct

    async def _send_mapped(self, chat: int, cid: str, text: str, **kw: Any) -> list[Message]:
        msgs = await self.conn.client.send_text(chat, text, **kw)
        await self.ctx.refs.remember([platform_id(chat, m.message_id) for m in msgs], {"cid": cid, "to": "agent"})
        return msgs

    async def _sync_private(self, conv: dict, st: dict, rk: str) -> None:
        cid = conv["id"]
        assignee = conv["assignee"] if conv["status"] == "open" else None
        owner = self.actions.agent(assignee) if assignee else None
        chat = await self.agent_chat(assignee) if owner is not None and may_see(owner, conv) else None
        old = st.get("chat") or None
        if chat and chat != old:
            if old:
                await self._notice(int(old), cid, f"#{tag(cid)} → {self._agent_name(assignee)}")
            events, total = await self._recent(cid)
            lines = [self._line(e) for e in events if self._relayable(e, assignee)]
            text = "🆕 " + self._header(conv) + ("\n" + "\n".join(lines) if lines else "")
            try:
                await self._send_mapped(int(chat), cid, text)
            except (Forbidden, BadRequest) as exc:  # e.g. the agent never started the bot
                self.log.warning("agent's Telegram chat refused the relay", extra={
                    "channel": self.ch, "agent": assignee, "error": str(exc)})
            else:
                await self._forward_files(int(chat), cid, self._telegram_files(events, assignee))
            await self.redis.hset(rk, mapping={"chat": chat, "agent": assignee, "cursor": total,
                                               "status": conv["status"]})
            return
        if not old:
            total = await self.redis.llen(self.keys.conversation_order(cid))
            if (st.get("agent") or "") != (assignee or "") or st.get("cursor") != str(total):
                # nobody on Telegram to relay to: remember how far it got, so sweeps skip it
                await self.redis.hset(rk, mapping={"chat": "", "agent": assignee or "", "cursor": total,
                                                   "status": conv["status"]})
            return
        events, cursor = await self._pending(cid, int(st.get("cursor") or 0))
        target_agent = st.get("agent") or None
        lines = [self._line(e) for e in events if self._relayable(e, target_agent)]
        if chat == old:
            if lines:
                try:
                    await self._send_mapped(int(chat), cid, f"#{tag(cid)} · {self._customer(conv)}\n"
                                            + "\n".join(lines))
                except (Forbidden, BadRequest) as exc:  # retrying cannot help; move on
                    self.log.warning("agent's Telegram chat refused the relay", extra={
                        "channel": self.ch, "agent": target_agent, "error": str(exc)})
                else:
                    await self._forward_files(int(chat), cid, self._telegram_files(events, target_agent))
            if cursor != int(st.get("cursor") or 0):
                await self.redis.hset(rk, "cursor", cursor)
            return
        # no longer this agent's: closed, back in the queue, or with an agent not on Telegram
        if conv["status"] == "closed":
            lines.append(f"✅ #{tag(cid)} closed")
        else:
            lines.append(f"#{tag(cid)} → {self._agent_name(assignee) if assignee else 'queue'}")
        await self._notice(int(old), cid, "\n".join(lines))
        await self.redis.hset(rk, mapping={"chat": "", "agent": "", "cursor": cursor, "status": conv["status"]})

    async def _notice(self, chat: int, cid: str, text: str) -> None:
        try:
            await self._send_mapped(chat, cid, text)
        except TelegramError as exc:
            self.log.info("telegram notice not sent", extra={"channel": self.ch, "error": str(exc)})

    async def _sync_team(self, conv: dict, st: dict, rk: str) -> None:
        cid = conv["id"]
        group = int(self.cfg.group_id)
        thread = int(st["thread"]) if st.get("thread") else None
        visible = may_see(self.audience, conv)
        if thread is None:
            if conv["status"] == "open" and visible:
                await self._open_topic(conv, rk, group)
            elif not visible:  # not the group's: remember how far it got, so sweeps skip it
                await self._skip(conv, rk, "")
            return
        if not visible:
            if st.get("hidden") != "1":
                try:
                    await self.conn.client.send_text(group, f"→ {conv.get('role') or '—'} · no longer relayed here",
                                                     thread_id=thread)
                except TelegramError as exc:
                    self.log.info("telegram notice not sent", extra={"channel": self.ch, "error": str(exc)})
            await self._skip(conv, rk, "1")
            return
        total = await self.redis.llen(self.keys.conversation_order(cid))
        if (total == int(st.get("cursor") or 0) and (conv["assignee"] or "") == (st.get("agent") or "")
                and conv["status"] == (st.get("status") or "open")):
            return  # nothing new: do not spend one of the group's 20 messages a minute
        # Take the group's rate slot first, so everything that arrived meanwhile is merged.
        await self.conn.client.pace(group)
        st = {_s(k): _s(v) for k, v in (await self.redis.hgetall(rk)).items()}
        events, cursor = await self._pending(cid, int(st.get("cursor") or 0))
        lines = [self._line(e) for e in events if self._relayable(e, None)]
        assignee = conv["assignee"] or ""
        if assignee != (st.get("agent") or "") and conv["status"] == "open":
            lines.append(f"→ {self._agent_name(assignee)}" if assignee else "→ queue")
        if conv["status"] == "closed" and st.get("status") != "closed":
            lines.append("✅ closed")
        if lines:
            try:
                await self.conn.client.send_text(group, "\n".join(lines), thread_id=thread, paced=True)
                await self._forward_files(group, cid, self._telegram_files(events, None), thread)
            except BadRequest as exc:
                if "thread not found" not in str(exc).lower() and "topic_deleted" not in str(exc).lower():
                    raise
                if conv["status"] != "open":
                    await self.redis.hset(rk, mapping={"cursor": cursor, "status": conv["status"]})
                    return
                self.log.info("agents' topic was deleted, opening a new one",
                              extra={"channel": self.ch, "conversation": cid})
                await self._open_topic(conv, rk, group)
                return
        await self.redis.hset(rk, mapping={"cursor": cursor, "agent": assignee, "status": conv["status"],
                                           "hidden": ""})

    async def _skip(self, conv: dict, rk: str, hidden: str) -> None:
        """A conversation the group may not see: nothing relayed, its cursor kept current."""
        total = await self.redis.llen(self.keys.conversation_order(conv["id"]))
        await self.redis.hset(rk, mapping={"cursor": total, "agent": conv["assignee"] or "",
                                           "status": conv["status"], "hidden": hidden})

    async def _open_topic(self, conv: dict, rk: str, group: int) -> None:
        cid = conv["id"]
        name = f"{self._customer(conv)} · {conv['channel']} · #{tag(cid)}"[:128]
        client = self.conn.client
        topic = await client.call(group, lambda: client.bot.create_forum_topic(group, name))
        thread = topic.message_thread_id
        await self.redis.set(self.keys.tg_topic_conv(self.ch, thread), cid)
        events, total = await self._recent(cid)
        lines = [self._line(e) for e in events if self._relayable(e, None)]
        assignee = conv["assignee"] or ""
        who = f"\n→ {self._agent_name(assignee)}" if assignee else ""
        text = "🆕 " + self._header(conv) + who + ("\n" + "\n".join(lines) if lines else "")
        await self.redis.hset(rk, mapping={"thread": thread, "cursor": total, "agent": assignee,
                                           "status": conv["status"]})
        await self.conn.client.send_text(group, text, thread_id=thread)
        await self._forward_files(group, cid, self._telegram_files(events, None), thread)

    # -- what agents write ----------------------------------------------------------------
    async def handle(self, update: Update, msg: Message, agent: AgentConfig | None) -> None:
        done = self.keys.tg_update_done(self.conn.client.bot_id, update.update_id)
        if await self.redis.exists(done):
            return
        await self._handle(msg, agent)
        await self.redis.set(done, "1", ex=DONE_TTL)

    async def _handle(self, msg: Message, agent: AgentConfig | None) -> None:
        user = msg.from_user
        if user is None or user.is_bot:
            return
        in_group = msg.chat.type != "private"
        if agent is None:
            agent = await self.linked_agent(user.id)
        text = (msg.text or msg.caption or "").strip()
        cmd, arg = parse_command(text)
        if cmd == "link":
            if in_group:
                await self._say(msg, "Send /link CODE to me in a private chat.")
                return
            linked = await self.actions.redeem_link_code(arg, "telegram", str(user.id)) if arg else None
            if linked is None:
                await self._say(msg, "That code is not valid (or expired). Get a new one in the console.")
                return
            await self.redis.set(self.keys.tg_agent_account(linked.id), str(user.id))
            await self._say(msg, f"✔ Linked to kefu agent {linked.name} ({linked.id}).\n"
                            + WHERE[self.mode])
            if self.mode == "private":  # their open conversations come here now
                for cid in await self.redis.smembers(self.keys.agent_conversations(linked.id)):
                    self.kick(_s(cid))
            return
        cid = await self._conversation_for(msg)
        if agent is None:
            if in_group and cid:
                await self._say(msg, "Your Telegram account is not linked to a kefu agent: "
                                     "send /link CODE to me in a private chat first.")
            return
        if cmd in ("start", "help"):
            await self._say(msg, HELP.format(where=WHERE[self.mode]), cid)
            return
        if cid is None:
            if in_group and not msg.message_thread_id:
                return  # chatter in the group's General topic
            await self._say(msg, "Which conversation? " + WHERE[self.mode])
            return
        actions = self.actions
        try:
            if cmd is None:
                files, problem = await self.conn.files.keep_files(msg)
                if problem:
                    await self._say(msg, f"✘ Not sent: {problem}", cid)
                    return
                if not text and not files:
                    await self._say(msg, "Only text, photos and files can be relayed to the customer.", cid)
                    return
                await actions.reply(agent, cid, text, via="telegram", attachments=files)
            elif cmd == "q":
                if not arg:
                    names = ", ".join(q.name for q in self.ctx.settings.quick_replies) or "none configured"
                    await self._say(msg, f"Usage: /q <name> — quick replies: {names}", cid)
                    return
                await actions.reply(agent, cid, "/q " + arg, via="telegram")
            elif cmd == "claim":
                await actions.claim(agent, cid, via="telegram")
                await self._say(msg, f"✔ #{tag(cid)} is yours.", cid)
            elif cmd == "close":
                await actions.close(agent, cid, via="telegram")
                await self._say(msg, f"✔ #{tag(cid)} closed.", cid)
            elif cmd == "transfer":
                if not arg:
                    await self._say(msg, "Usage: /transfer <role|agent>", cid)
                    return
                if actions.agent(arg) is not None:
                    conv = await actions.transfer(agent, cid, to_agent=arg, via="telegram")
                else:
                    conv = await actions.transfer(agent, cid, role=arg, via="telegram")
                who = self._agent_name(conv.get("assignee")) if conv.get("assignee") else f"queue ({arg})"
                await self._say(msg, f"✔ #{tag(cid)} → {who}", cid)
            elif cmd == "who":
                await self._say(msg, await self._who(agent, cid), cid)
            else:
                await self._say(msg, f"Unknown command /{cmd}.\n" + HELP.format(where=WHERE[self.mode]), cid)
        except ConversationError as exc:
            await self._say(msg, "✖ " + refusal(exc)[1], cid)

    async def _conversation_for(self, msg: Message) -> str | None:
        if msg.chat.type == "private":
            rt = msg.reply_to_message
            if rt is None:
                return None
            ref = await self.ctx.refs.recall(platform_id(msg.chat.id, rt.message_id))
            return ref.get("cid") if ref and ref.get("to") == "agent" else None
        if self.mode == "team" and msg.message_thread_id and msg.is_topic_message:
            return _s(await self.redis.get(self.keys.tg_topic_conv(self.ch, msg.message_thread_id))) or None
        return None

    async def _who(self, agent: AgentConfig, cid: str) -> str:
        conv = await self.actions.view(agent, cid, via="telegram", limit=HISTORY)
        c = conv["customer"]
        lines = [self._header(conv),
                 f"customer: {c.get('name') or '—'} ({c.get('id')}) · tier {c.get('tier') or 'new'}"
                 f" · channel {conv['channel']}",
                 f"status: {conv['status']} · owner: {self._agent_name(conv['assignee']) or '—'}"]
        for k, v in (c.get("attributes") or {}).items():
            lines.append(f"{k}: {v}")
        if conv.get("messages"):
            lines.append("recent:")
            for m in conv["messages"][-HISTORY:]:
                s = m["sender"]
                who = s.get("name") or s.get("kind")
                lines.append(f"· {who}: {m['text'][:200]}")
        return mask_text("\n".join(lines))

    async def _say(self, msg: Message, text: str, cid: str | None = None) -> None:
        """Answer the agent where they wrote; in private chats the answer maps to the conversation."""
        chat = msg.chat.id
        in_group = msg.chat.type != "private"
        thread = msg.message_thread_id if in_group and msg.is_topic_message else None
        try:
            if cid and not in_group:
                await self._send_mapped(chat, cid, text, reply_to=msg.message_id)
            else:
                await self.conn.client.send_text(chat, text, thread_id=thread, reply_to=msg.message_id)
        except TelegramError as exc:
            self.log.info("telegram answer to agent not sent", extra={"channel": self.ch, "error": str(exc)})
