"""Live conversation state in Redis: conversations, their history, ownership.

Every change that must be atomic across several kefu processes — opening a
conversation, assignment, claim, transfer, close, a reply being stored and
queued for delivery — is one Lua script (storage/lua/), so two processes can
never both own or both answer a conversation.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any, Iterable, NamedTuple

import msgpack
import redis.asyncio as aioredis

from storage import metrics
from storage.events import BrokenEvent, Event, new_id
from storage.keys import Keys


@dataclass(slots=True)
class Routing:
    """What the router decided about one inbound message (routing/router.py)."""
    role: str = ""  # for a new conversation
    tier: str = ""  # "" = keep the customer's
    priority: str = "normal"  # for a new conversation
    language: str = ""  # "" = keep
    order_no: str = ""
    human: bool = False
    menu_pending: bool = False
    first_due: float = 0.0  # SLA due times, used if the message opens a conversation
    resolution_due: float = 0.0


class IngestItem(NamedTuple):
    """One customer message as storage/lua/ingest.lua takes it.  The script's line
    that names these fields (`local INGEST_ITEM = unpack(m)`) is generated from this
    class, so a field is added or moved here and nowhere else.  Strings only, as Lua
    compares them: flags are '1'/'0', times '%.3f', '' means "keep what is stored"."""
    mid: str
    channel: str
    kind: str
    cust: str
    name: str
    blob: bytes  # the encoded Event
    new_cid: str  # the conversation's id if this message opens one
    role: str
    attrs: str  # the customer's attributes as JSON
    tier: str
    priority: str
    lang: str
    order_no: str
    human: str
    menu: str  # the welcome menu awaits an answer
    first_due: str  # SLA due times, if the message opens a conversation
    resolution_due: str


def _lua(name: str) -> str:
    pkg = resources.files("storage") / "lua"
    script = (pkg / "common.lua").read_text() + "\n" + (pkg / f"{name}.lua").read_text()
    return script.replace("INGEST_ITEM", ", ".join(IngestItem._fields))


class ConversationError(Exception):
    """A conversation action refused; `code` is machine-readable, `owner` set for 'owned'."""

    def __init__(self, code: str, owner: str | None = None):
        super().__init__(code)
        self.code = code
        self.owner = owner


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else ("" if v is None else str(v))


def _flat_to_dict(flat: list) -> dict[bytes | str, Any]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


def decode_message(cid: str, blob: bytes) -> dict[str, Any] | None:
    try:
        ev = Event.decode(blob)
    except BrokenEvent:
        return None
    ev.conversation_id = cid
    return ev.public()


def conversation_view(h: dict) -> dict[str, Any] | None:
    """A conversation hash as the agent API shows it."""
    g = {_s(k): v for k, v in h.items()}
    if "id" not in g:
        return None
    cid = _s(g["id"])
    last = g.get("last_message")
    try:
        attrs = json.loads(_s(g.get("attributes")) or "{}")
    except ValueError:
        attrs = {}
    return {
        "id": cid,
        "channel": _s(g.get("channel")),
        "channel_kind": _s(g.get("channel_kind")),
        "status": _s(g.get("status")),
        "role": _s(g.get("role")) or None,
        "assignee": _s(g.get("assignee")) or None,
        "customer": {
            "id": _s(g.get("customer_id")),
            "name": _s(g.get("customer_name")),
            "channel": _s(g.get("channel")),
            "tier": _s(g.get("tier")) or "new",
            "attributes": attrs,
            "language": _s(g.get("language")) or None,
        },
        "last_message": decode_message(cid, last) if last else None,
        "created_at": float(_s(g.get("created_at")) or 0),
        "updated_at": float(_s(g.get("updated_at")) or 0),
        "unread": int(_s(g.get("unread")) or 0),
        "queued": _s(g.get("queued")) == "1",
        "priority": _s(g.get("priority")) or "normal",
        "sla_due": float(_s(g.get("sla_due"))) if _s(g.get("sla_due")) else None,
        "sla_breached": _s(g.get("sla_level")) not in ("", "0"),
        "position": int(_s(g.get("position"))) if _s(g.get("position")) else None,
        "order_no": _s(g.get("order_no")) or None,
        "menu_pending": _s(g.get("menu_pending")) == "1",
        "left_message": _s(g.get("left_message")) == "1",
        "human_requested": _s(g.get("human")) == "1",
        "waiting_since": float(_s(g.get("waiting_since"))) if _s(g.get("waiting_since")) else None,
        "first_response_at": float(_s(g.get("first_response_at"))) if _s(g.get("first_response_at")) else None,
        "flags": {k[5:]: _s(v) for k, v in g.items() if k.startswith("flag:")},
    }


def pack_ingest(events: list[Event], routing: list[Routing]) -> bytes:
    """The argument of storage/lua/ingest.lua for a batch: one msgpack array of
    IngestItems, since packing thousands of separate arguments costs more than the
    script itself."""
    batch = []
    for ev, r in zip(events, routing):
        attrs = ev.meta.get("attributes")
        batch.append(IngestItem(
            mid=ev.id, channel=ev.channel, kind=ev.channel_kind, cust=ev.customer_id, name=ev.sender_name,
            blob=ev.encode(),
            new_cid="c" + ev.id[1:],  # a new conversation is named after its first message
            role=r.role,
            # never NaN/Infinity: not JSON, the console could not read the conversation
            attrs=json.dumps(attrs, ensure_ascii=False, allow_nan=False) if attrs else "",
            tier=r.tier, priority=r.priority, lang=r.language, order_no=r.order_no,
            human="1" if r.human else "0", menu="1" if r.menu_pending else "0",
            first_due=f"{r.first_due:.3f}", resolution_due=f"{r.resolution_due:.3f}"))
    return msgpack.packb(batch, use_bin_type=False)


def live_frame(payloads: Iterable[dict]) -> str:
    """Live events travel on pub/sub as one message per batch, one JSON object per
    line (json.dumps never emits a raw newline); storage/fanout.py splits them."""
    return "\n".join(json.dumps(p, ensure_ascii=False) for p in payloads)


class ConversationStore:
    def __init__(self, redis: aioredis.Redis, keys: Keys):
        self.redis = redis
        self.keys = keys
        self.p = keys.prefix
        self._scripts = {n: redis.register_script(_lua(n)) for n in
                         ("ingest", "reply", "claim", "transfer", "close", "drain",
                          "sync_agents", "presence", "bot_message")}
        lua = resources.files("storage") / "lua"
        self._timers = redis.register_script((lua / "timers.lua").read_text())

    async def _run(self, name: str, *args: Any, client: Any = None) -> Any:
        return await self._scripts[name](args=[self.p, *args], client=client)

    # -- inbound ---------------------------------------------------------------
    async def ingest(self, events: list[Event], packed: bytes, context: str, now: float
                     ) -> tuple[list[tuple[str, bool, bool, bool, dict | None]], set[str]]:
        """Store a batch of customer messages with one script call (storage/lua/ingest.lua);
        `packed` is pack_ingest(events, routing), made before the batch's turn came.

        Returns per event: (conversation id, message is new, conversation was
        opened by it, its assignment changed, the conversation view when the
        router may need to act on it — else None); and the roles somebody online
        holds ("" when anyone at all is online), read in the same atomic step.
        """
        res = json.loads(await self._scripts["ingest"](args=[self.p, f"{now:.6f}", context, packed]))
        out = []
        for ev, item in zip(events, res["items"]):
            view = None
            if "conv" in item:
                ev.conversation_id = item["cid"]
                view = conversation_view(item["conv"])
                view["last_message"] = ev.public()
            out.append((item["cid"], bool(item["fresh"]), bool(item["created"]), bool(item["changed"]), view))
        return out, set(res["online_roles"] or ())

    async def bot_messages(self, items: list[tuple[dict, str, str, str, str]], sender_names: dict[str, str],
                           now: float) -> int:
        """Automatic messages: (conversation view, message id, text, field to set, value).
        `sender_names` is the bot's name by language ({"zh": ..., "en": ...}): each
        customer sees it in their conversation's language.

        A message id derived from what caused it makes a replay send nothing twice."""
        if not items:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        published = []
        for conv, mid, text, field, value in items:
            lang = "en" if (conv["customer"].get("language") or "").startswith("en") else "zh"
            ev = Event(id=mid, channel=conv["channel"], channel_kind=conv["channel_kind"], direction="out",
                       customer_id=conv["customer"]["id"], text=text, conversation_id=conv["id"],
                       sender_kind="bot", sender_id="bot", sender_name=sender_names[lang], ts=now)
            await self._scripts["bot_message"](
                args=[self.p, conv["id"], mid, ev.encode(), f"{now:.6f}", self.keys.outbound(ev.channel),
                      field, value], client=pipe)
            published.append({"type": "message", "conversation_id": conv["id"], "message": ev.public()})
        sent = await pipe.execute()
        await self.publish(*(p for p, ok in zip(published, sent) if ok))
        return sum(sent)

    async def set_fields(self, cid: str, **fields: str) -> None:
        await self.redis.hset(self.keys.conversation(cid), mapping=fields)

    # -- timers ----------------------------------------------------------------
    async def schedule(self, kind: str, cid: str, extra: str, due: float) -> None:
        await self.redis.zadd(self.keys.timers, {f"{kind}|{cid}|{extra}": due})

    async def fire_due_timers(self, now: float, limit: int = 200) -> int:
        """Move due timers into the inbound stream (atomic, so each fires once)."""
        return await self._timers(keys=[self.keys.timers, self.keys.inbound], args=[f"{now:.6f}", limit])

    # -- agent actions ---------------------------------------------------------
    async def reply(self, cid: str, agent_id: str, agent_name: str, override: bool,
                    text: str, attachments: list | None = None, via: str = "console") -> tuple[dict, dict]:
        conv = await self.redis.hmget(self.keys.conversation(cid), "channel", "channel_kind", "customer_id")
        if conv[0] is None:
            raise ConversationError("not_found")
        ev = Event(id=new_id("m"), channel=_s(conv[0]), channel_kind=_s(conv[1]), direction="out",
                   customer_id=_s(conv[2]), text=text, conversation_id=cid, sender_kind="agent",
                   sender_id=agent_id, sender_name=agent_name, attachments=attachments or [],
                   meta={"via": via})
        now = f"{time.time():.6f}"
        res = await self._run("reply", cid, agent_id, "1" if override else "0", ev.id, ev.encode(),
                              now, self.keys.outbound(ev.channel))
        view = self._result(res)
        if view["first_response_at"] == float(now):  # this reply was the conversation's first
            metrics.first_response.labels(view["role"] or "none").observe(
                max(0.0, view["first_response_at"] - view["created_at"]))
        return ev.public(), view

    async def claim(self, cid: str, agent_id: str, override: bool) -> dict:
        return self._result(await self._run("claim", cid, agent_id, "1" if override else "0",
                                            f"{time.time():.6f}"))

    async def transfer(self, cid: str, actor: str, override: bool, what: str, target: str,
                       context: str) -> dict:
        return self._result(await self._run("transfer", cid, actor, "1" if override else "0",
                                            f"{time.time():.6f}", what, target, context))

    async def close(self, cid: str, actor: str, override: bool) -> dict:
        return self._result(await self._run("close", cid, actor, "1" if override else "0",
                                            f"{time.time():.6f}"))

    async def drain(self, context: str, now: float, limit: int = 200) -> list[dict]:
        """Assign waiting conversations to agents with free slots."""
        flats = await self._run("drain", f"{now:.6f}", limit, context)
        return [v for v in (conversation_view(_flat_to_dict(f)) for f in flats) if v]

    async def set_presence(self, agent_id: str, status: str, now: float | None = None) -> None:
        await self._run("presence", agent_id, status, f"{now or time.time():.6f}")

    async def touch(self, agent_id: str, now: float) -> None:
        """The agent did something: keeps them from being set away for inactivity."""
        await self.redis.hset(self.keys.agent(agent_id), "last_active", f"{now:.3f}")

    async def sync_agents(self, agents: Iterable[tuple[str, str, int, list[str]]]) -> None:
        args: list[Any] = []
        for aid, name, cap, roles in agents:
            args += [aid, name, cap, ",".join(roles)]
        await self._run("sync_agents", *args)

    def _result(self, res: list) -> dict:
        if _s(res[0]) == "err":
            raise ConversationError(_s(res[1]), _s(res[2]) if len(res) > 2 else None)
        view = conversation_view(_flat_to_dict(res[-1]))
        assert view is not None
        return view

    # -- reads -----------------------------------------------------------------
    async def get(self, cid: str, *, messages: bool = True, limit: int = 1000) -> dict | None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.conversation(cid))
        if messages:
            pipe.lrange(self.keys.conversation_order(cid), -limit, -1)
            pipe.hgetall(self.keys.conversation_messages(cid))
        res = await pipe.execute()
        view = conversation_view(res[0]) if res[0] else None
        if view is None:
            return None
        if messages:
            blobs = res[2]
            view["messages"] = [m for m in (decode_message(cid, blobs[i]) for i in res[1] if i in blobs) if m]
        await self._positions([view])
        return view

    async def message(self, cid: str, mid: str) -> dict | None:
        """One message of a conversation (as the agent API shows it), or None."""
        blob = await self.redis.hget(self.keys.conversation_messages(cid), mid)
        return decode_message(cid, blob) if blob else None

    async def _positions(self, views: list[dict]) -> None:
        """Fill in the queue position of waiting conversations."""
        queued = [v for v in views if v["queued"] and v["position"] is None]
        if not queued:
            return
        pipe = self.redis.pipeline(transaction=False)
        for v in queued:
            pipe.zrank(self.keys.queue(v["role"] or ""), v["id"])
        for v, rank in zip(queued, await pipe.execute()):
            v["position"] = rank + 1 if rank is not None else None

    async def list(self, status: str = "open", limit: int = 200) -> list[dict]:
        keys = {"open": [self.keys.open_conversations], "closed": [self.keys.closed_conversations],
                "all": [self.keys.open_conversations, self.keys.closed_conversations]}[status]
        ids: list = []
        for k in keys:
            ids += await self.redis.zrevrange(k, 0, limit - 1)
        ids = list(dict.fromkeys(ids))  # closed between the two reads: in both sets
        pipe = self.redis.pipeline(transaction=False)
        for cid in ids[:limit]:
            pipe.hgetall(self.keys.conversation(_s(cid)))
        views = [v for v in (conversation_view(h) for h in await pipe.execute()) if v]
        await self._positions(views)
        return views

    async def current_for_customer(self, channel: str, customer_id: str) -> str | None:
        """The customer's open conversation, else their most recent one."""
        cid = await self.redis.get(self.keys.customer_conversation(channel, customer_id))
        if cid is None:
            last = await self.redis.lrange(self.keys.customer_history(channel, customer_id), -1, -1)
            cid = last[0] if last else None
        return _s(cid) if cid is not None else None

    async def agent(self, agent_id: str) -> dict[str, str]:
        return {_s(k): _s(v) for k, v in (await self.redis.hgetall(self.keys.agent(agent_id))).items()}

    async def publish(self, *payloads: dict) -> None:
        """Push live changes to every process's /api/events subscribers (one message)."""
        if payloads:
            await self.redis.publish(self.keys.agent_events, live_frame(payloads))
