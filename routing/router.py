"""The router: the consumer group that turns inbound events into conversations.

Per batch from the inbound stream:
1. decide, per message, what the rules say (role, tier, priority, language,
   order number, a request for a human) — pure Python, no I/O, done as soon
   as the batch is read, while Redis still works on the batch before it;
2. store the batch in one script call (storage/lua/ingest.lua:
   find or open the conversation, append the message once, assign it to an
   online agent of the role — sticky, least loaded, longest idle, VIP lane,
   fallback role — or queue it), honouring which roles are closed right now;
3. act on the result: welcome and menu, off-hours / nobody-online / queue
   position messages, reminder and SLA timers;
4. push the changes to agents, then acknowledge.
A crash between steps replays the batch; every step is idempotent by message
id, so the replay changes nothing.

Timers (reminders, SLA breaches) live in a Redis sorted set; a due timer is
atomically turned into a `timer` event on the inbound stream
(storage/lua/timers.lua), so it fires once however many routers run.
All time comes from `clock`, so scenario tests can drive it.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Callable, Iterable

from routing.automation import Templates, detect_language
from routing.working_hours import WorkingHours
from storage import metrics
from storage.bus import Bus, StreamConsumer, sleep_or_stop
from storage.conversations import ConversationError, ConversationStore, Routing, pack_ingest
from storage.events import Event

if TYPE_CHECKING:
    from aggregator.config import Settings

log = logging.getLogger("kefu.router")

GROUP = "router"
SYSTEM = "system"
_KEYWORD_ORDER = ("dispute", "finance", "aftersales", "presales")
_ORDER_NO = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{0,4}\d{10,24})(?![A-Za-z0-9])")
_PHONE = re.compile(r"^1[3-9]\d{9}$")
_MENU_ANSWER = re.compile(r"\s*([0-9]{1,2})\s*")  # ASCII digits only: int() also reads ² ① ٣
_RAISE = {"normal": "urgent", "urgent": "dispute", "dispute": "dispute"}


def _any_of(words: list[str]) -> re.Pattern | None:
    """One case-insensitive pattern for a word list: one scan of the text instead of one per word."""
    return re.compile("|".join(map(re.escape, words)), re.IGNORECASE) if words else None


def find_order_no(text: str) -> str:
    for m in _ORDER_NO.finditer(text):
        if not _PHONE.match(m.group(1)):
            return m.group(1)
    return ""


@dataclass(slots=True)
class Prepared:
    """A batch from the inbound stream with the rules' decisions already made."""
    batch: list[tuple[str, Event]]
    messages: list[Event]  # the customer messages among them
    decisions: list[Routing]
    packed: bytes  # storage.conversations.pack_ingest(messages, decisions)


class Router:
    def __init__(self, settings: Settings, bus: Bus, store: ConversationStore,
                 clock: Callable[[], float] = time.time):
        self.bus = bus
        self.store = store
        self.clock = clock
        self.processed = 0
        self.settings = settings
        self.apply(settings)
        self.consumer = StreamConsumer(
            bus, bus.keys.inbound, GROUP, self.handle, prepare=self.prepare, batch=settings.bus.batch,
            block_ms=settings.bus.block_ms, claim_idle_ms=int(settings.bus.claim_idle * 1000),
            heartbeat_ttl=settings.bus.heartbeat_ttl, stage="router", isolate=True,
        )
        self.state = "starting"  # running | restarting (after a failure, backing off) | stopped
        self.last_error: str | None = None

    def apply(self, settings: Settings) -> None:
        """(Re)build what the rules need from config; called again on SIGHUP."""
        self.settings = settings
        self.templates = Templates(settings)
        self.calendars = {name: WorkingHours(cfg) for name, cfg in settings.hours.items()}
        kw = settings.router.keywords
        order = [r for r in _KEYWORD_ORDER if r in kw] + [r for r in kw if r not in _KEYWORD_ORDER]
        self.keywords = [(r, _any_of(kw[r])) for r in order if kw[r]]
        # Most messages name no role: one scan says so before the per-role scans.
        self.any_keyword = _any_of([w for r in order for w in kw[r]])
        self.human_words = _any_of(settings.router.human_words)
        self.menu = {rc.menu: name for name, rc in settings.roles.items() if rc.menu}

    @property
    def running(self) -> bool:
        return self.state == "running" and self.consumer.running

    # -- rules (pure) ----------------------------------------------------------
    def calendar(self, role: str) -> WorkingHours | None:
        rc = self.settings.roles.get(role)
        return self.calendars.get(rc.hours) if rc and rc.hours else None

    def closed_roles(self, now: float) -> list[str]:
        at = datetime.fromtimestamp(now, timezone.utc)
        return [r for r in self.settings.roles if (c := self.calendar(r)) is not None and not c.is_open(at)]

    def context(self, now: float) -> str:
        """Routing context for the Lua scripts (storage/lua/common.lua)."""
        s = self.settings
        at = datetime.fromtimestamp(now, timezone.utc)
        off = [a.id for a in s.agents if a.hours and not self.calendars[a.hours].is_open(at)]
        return json.dumps({
            "closed": self.closed_roles(now),
            "fallback": {r: rc.fallback for r, rc in s.roles.items() if rc.fallback},
            "sticky": s.router.sticky,
            "vip_agents": s.router.vip_agents,
            "off_agents": off,
            "roles": {**{r: 1 for r in s.roles}, "_any": 1},
            "remind_after": s.sla.remind_after,
            "position_updates": s.router.position_updates,
        })

    def keyword_role(self, text: str) -> str:
        """The first role, in priority order (dispute, finance, ...), whose word the text has."""
        if self.any_keyword is None or not self.any_keyword.search(text):
            return ""
        for role, words in self.keywords:
            if words.search(text):
                return role
        return ""

    def tier_of(self, ev: Event) -> str:
        t = self.settings.tiers
        if f"{ev.channel}:{ev.customer_id}" in t.vip_customers:
            return "vip"
        attrs = ev.meta.get("attributes")
        if not isinstance(attrs, dict) or not ({"order_count", "total_spent"} & set(attrs)):
            return ""
        try:
            orders = float(attrs.get("order_count") or 0)
            spent = float(attrs.get("total_spent") or 0)
        except (TypeError, ValueError):
            return ""
        if not (math.isfinite(orders) and math.isfinite(spent)):
            return ""

        def reached(th) -> bool:
            return (th.min_orders > 0 and orders >= th.min_orders) or (th.min_spent > 0 and spent >= th.min_spent)
        return "vip" if reached(t.vip) else "regular" if reached(t.regular) else "new"

    def decide(self, ev: Event) -> Routing:
        channel = self.settings.channels.get(ev.channel)
        fixed = channel.role if channel is not None and channel.role else ""
        role = fixed or self.keyword_role(ev.text)
        tier = self.tier_of(ev)
        priority = "dispute" if role == "dispute" else "normal"
        if tier == "vip":
            priority = _RAISE[priority]
        # A command such as /start says nothing about language; the platform's code may.
        language = "" if ev.text.startswith("/") else detect_language(ev.text)
        platform = str(ev.meta.get("language") or "").lower()
        if not language and platform:
            language = "zh" if platform.startswith("zh") else "en"
        return Routing(
            role=role or self.settings.router.default_role, tier=tier, priority=priority,
            language=language, order_no=find_order_no(ev.text),
            human=bool(self.human_words and self.human_words.search(ev.text)),
            menu_pending=not role and bool(self.menu),
        )

    # -- the consumer ----------------------------------------------------------
    def prepare(self, batch: list[tuple[str, Event]]) -> Prepared:
        """Step 1, pure Python: the rules' decisions and the ingest argument.  The
        consumer runs this as soon as a batch is read, while Redis still works on
        the previous one."""
        now = self.clock()
        messages = [ev for _, ev in batch if ev.type == "message" and ev.direction == "in"]
        decisions = [self.decide(ev) for ev in messages]
        dues: dict[tuple[str, str], tuple[float, float]] = {}
        for d in decisions:  # SLA due times, the same for every message of a batch
            key = (d.role, d.priority)
            if key not in dues:
                target = getattr(self.settings.sla, d.priority, self.settings.sla.normal)
                dues[key] = (self._due(d.role, now, target.first_response),
                             self._due(d.role, now, target.resolution))
            d.first_due, d.resolution_due = dues[key]
        return Prepared(batch, messages, decisions, pack_ingest(messages, decisions) if messages else b"")

    async def handle(self, prepared: Prepared) -> Iterable[str]:
        """Steps 2-4 for a prepared batch; returns the stream ids it finished."""
        batch, messages, decisions = prepared.batch, prepared.messages, prepared.decisions
        now = self.clock()
        if messages:
            context = self.context(now)
            results, online_roles = await self.store.ingest(messages, prepared.packed, context, now)
            payloads: list[dict] = []
            for ev, (cid, fresh, _created, changed, view) in zip(messages, results):
                if fresh:
                    ev.conversation_id = cid
                    payloads.append({"type": "message", "conversation_id": cid, "message": ev.public()})
                    if changed and view is not None:
                        payloads.append({"type": "conversation", "conversation": view})
            await self.store.publish(*payloads)
            pushed = time.time()
            for ev, (_, fresh, *_rest) in zip(messages, results):
                if fresh:
                    metrics.inbound_to_agent.observe(max(0.0, pushed - ev.ts))
            await self._automate(messages, decisions, results, now, context, online_roles)
            self.processed += len(messages)
            metrics.router_processed.inc(len(messages))
        for _, ev in batch:
            if ev.type == "timer":
                await self._on_timer(ev, now)
            elif not (ev.type == "message" and ev.direction == "in"):
                log.warning("ignored inbound event", extra={"type": ev.type, "direction": ev.direction})
        return [sid for sid, _ in batch]

    async def _automate(self, events: list[Event], decisions: list[Routing],
                        results: list[tuple[str, bool, bool, bool, dict | None]], now: float,
                        context: str, online_roles: set[str]) -> None:
        """Automatic messages for the conversations the batch opened or left waiting."""
        closed = set(self.closed_roles(now))
        bot: list[tuple[dict, str, str, str, str]] = []
        for ev, d, (_cid, fresh, created, _changed, view) in zip(events, decisions, results):
            if fresh and view is not None:
                await self._automate_one(ev, d, created, view, now, context, online_roles, closed, bot)
        await self.store.bot_messages(bot, self._bot_name(), now)

    async def _automate_one(self, ev: Event, d: Routing, created: bool, view: dict, now: float, context: str,
                            online_roles: set[str], closed: set[str], bot: list) -> None:
        s, t = self.settings, self.templates
        cid = view["id"]
        lang = view["customer"]["language"] or d.language or "zh"
        ch, role = view["channel"], view["role"] or ""
        say = lambda name, **kw: t.text(name, lang, channel=ch, role=role, **kw)  # noqa: E731
        if created:
            parts = [say("welcome", customer_name=view["customer"]["name"])]
            if view["menu_pending"]:
                parts.append(say("menu", menu=t.menu(lang)))
            if not view["order_no"]:
                parts.append(say("ask_order"))
            bot.append((view, f"{ev.id}-welcome", "\n".join(parts), "", ""))
        elif view["menu_pending"]:
            answer = _MENU_ANSWER.fullmatch(ev.text)
            choice = self.menu.get(int(answer.group(1))) if answer else None
            choice = choice or self.keyword_role(ev.text) or None
            if choice:
                view = await self._reroute(view, choice, context)
                role = view["role"] or ""
                bot.append((view, f"{ev.id}-routed", say("routed", role_name=t.role_name(choice, lang)), "", ""))
        if view["assignee"]:
            return
        # Waiting: tell the customer honestly what to expect, once per situation.
        if d.human and not view["flags"].get("human_told"):
            bot.append((view, f"{ev.id}-human", say("human"), "flag:human_told", "1"))
        if role in closed:
            told_until = float(view["flags"].get("offhours_until") or 0)
            nxt = self._next_open(role, now)
            if now >= told_until and nxt is not None:
                text = self.off_hours_text(role, lang, ch)
                bot.append((view, f"{ev.id}-offhours", text, "flag:offhours_until", f"{nxt.timestamp():.0f}"))
            return
        fallback = s.roles[role].fallback if role in s.roles else None
        if not ({role, fallback} & online_roles):
            if not view["left_message"]:
                bot.append((view, f"{ev.id}-nobody", say("nobody_online"), "left_message", "1"))
                view["left_message"] = True
                await self.store.publish({"type": "alert", "kind": "nobody_online", "conversation_id": cid,
                                          "role": role, "roles": ["supervisor"]})
        elif view["position"] and now - float(view["flags"].get("position_at") or 0) >= s.router.position_updates:
            bot.append((view, f"{ev.id}-position", say("queue_position", position=view["position"]),
                        "flag:position_at", f"{now:.0f}"))
            view["flags"]["position_at"] = f"{now:.0f}"

    async def _reroute(self, view: dict, role: str, context: str) -> dict:
        """The customer chose a role from the menu: hand the conversation over."""
        if role == view["role"]:
            await self.store.set_fields(view["id"], menu_pending="0")
            view["menu_pending"] = False
            return view
        try:
            new = await self.store.transfer(view["id"], SYSTEM, True, "role", role, context)
        except ConversationError:
            return view
        await self.store.publish({"type": "conversation", "conversation": new})
        return new

    def off_hours_text(self, role: str, lang: str, channel: str = "") -> str | None:
        """The off-hours message for `role` if it is closed now (widget, chat apps)."""
        now = self.clock()
        if role not in self.closed_roles(now):
            return None
        nxt = self._next_open(role, now)
        if nxt is None:
            return None
        when = self.calendar(role).describe(nxt, "en" if lang == "en" else "zh",
                                            now=datetime.fromtimestamp(now, timezone.utc))
        return self.templates.text("off_hours", lang, channel=channel, role=role, next_open=when)

    def _next_open(self, role: str, now: float) -> datetime | None:
        cal = self.calendar(role)
        return cal.next_open(datetime.fromtimestamp(now, timezone.utc)) if cal else None

    def _bot_name(self) -> dict[str, str]:
        return self.settings.bot_name.model_dump()

    async def closed_message(self, conv: dict) -> None:
        """The close message, in the customer's language, on their channel."""
        lang = conv["customer"]["language"] or "zh"
        text = self.templates.text("closed", lang, channel=conv["channel"], role=conv["role"] or "")
        await self.store.bot_messages([(conv, f"m_close_{conv['id']}", text, "", "")], self._bot_name(),
                                      self.clock())

    # -- SLA ---------------------------------------------------------------------
    def _due(self, role: str, start: float, seconds: float) -> float:
        cal = self.calendar(role)
        if self.settings.sla.working_time and cal is not None and seconds > 0:
            end = cal.add_working_time(datetime.fromtimestamp(start, timezone.utc),
                                       timedelta(seconds=seconds))
            if end is not None:
                return end.timestamp()
        return start + seconds

    async def _on_timer(self, ev: Event, now: float) -> None:
        kind, cid = ev.meta.get("kind"), ev.meta.get("conversation_id")
        conv = await self.store.get(cid, messages=False) if cid else None
        if conv is None or conv["status"] != "open":
            return
        # A timer event replayed after a crash must not act twice.
        if not await self.store.redis.hsetnx(self.bus.keys.conversation(cid), f"flag:done:{ev.id}", "1"):
            return
        if kind == "remind":
            await self._remind(conv, now)
        elif kind == "first_response" and conv["first_response_at"] is None:
            await self._escalate(conv, "first_response", now)
        elif kind == "resolution":
            await self._escalate(conv, "resolution", now)
        elif kind == "escalate" and conv["waiting_since"] is not None:
            await self._escalate(conv, "still_waiting", now)

    async def _remind(self, conv: dict, now: float) -> None:
        waiting = conv["waiting_since"]
        if waiting is None or not conv["assignee"] or now - waiting < self.settings.sla.remind_after - 1:
            return
        await self.store.publish({"type": "reminder", "conversation_id": conv["id"], "agent": conv["assignee"],
                                  "waiting_seconds": round(now - waiting)})
        if self.settings.sla.holding_reply:
            lang = conv["customer"]["language"] or "zh"
            text = self.templates.text("holding", lang, channel=conv["channel"], role=conv["role"] or "")
            await self.store.bot_messages([(conv, f"m_hold_{conv['id']}_{waiting:.0f}", text, "", "")],
                                          self._bot_name(), now)

    async def _escalate(self, conv: dict, reason: str, now: float) -> None:
        """One step up the ladder (sla.escalation): notify supervisors, then reassign."""
        ladder = self.settings.sla.escalation
        level = int(await self.store.redis.hincrby(self.bus.keys.conversation(conv["id"]), "sla_level", 1))
        if reason != "still_waiting":  # a later step of the same breach is not a new one
            metrics.sla_breaches.labels(conv["priority"], reason).inc()
        await self.store.publish({"type": "escalation", "conversation_id": conv["id"], "reason": reason,
                                  "level": level, "agent": conv["assignee"], "roles": ["supervisor"]})
        log.info("sla breach", extra={"conversation": conv["id"], "reason": reason, "level": level})
        action = ladder[level - 1] if level <= len(ladder) else None
        if action == "reassign" and conv["assignee"]:
            try:
                new = await self.store.transfer(conv["id"], SYSTEM, True, "reassign", "", self.context(now))
                await self.store.publish({"type": "conversation", "conversation": new})
            except ConversationError:
                pass
        if level < len(ladder):
            target = getattr(self.settings.sla, conv["priority"], self.settings.sla.normal)
            await self.store.schedule("escalate", conv["id"], str(level + 1),
                                      now + max(target.first_response, 60.0))
        else:
            view = await self.store.get(conv["id"], messages=False)
            if view:
                await self.store.publish({"type": "conversation", "conversation": view})

    # -- loops -----------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Consume and tick until `stop`; the consumer is restarted with backoff when it
        fails, like a connector (connectors/supervisor.py), while `/healthz` says
        ``restarting``.  The ticker runs throughout (it survives its own failures): a
        restart never waits for it, since cancelling a task inside a Redis call is not
        always honoured by the client."""
        cfg = self.settings.supervisor
        delay = cfg.restart_initial
        ticker = asyncio.create_task(self._tick_loop(stop), name="router-ticks")
        try:
            while not stop.is_set():
                started = time.monotonic()
                self.state = "running"
                try:
                    await self.consumer.run(stop)
                    break
                except Exception as exc:
                    self.state, self.last_error = "restarting", f"{type(exc).__name__}: {exc}"[:300]
                    if time.monotonic() - started >= cfg.restart_max:
                        delay = cfg.restart_initial  # it had been healthy: a new failure
                    log.error("router failed, restarting", extra={"error": self.last_error, "retry_in": delay})
                    await sleep_or_stop(stop, delay)
                    delay = min(delay * 2, cfg.restart_max)
        finally:
            self.state = "stopped"
            if not stop.is_set():
                ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)

    async def _tick_loop(self, stop: asyncio.Event) -> None:
        """Timers, queue draining and auto-away: safety nets that need no event."""
        while not stop.is_set():
            try:
                await self.tick()
            except Exception as exc:  # Redis away: the consumer loop logs and retries too
                log.debug("tick failed", extra={"error": str(exc)})
            await sleep_or_stop(stop, self.settings.router.drain_interval)

    async def tick(self) -> None:
        now = self.clock()
        await self.store.fire_due_timers(now)
        await self.drain()
        await self._auto_away(now)

    async def drain(self) -> None:
        now = self.clock()
        views = await self.store.drain(self.context(now), now)
        await self.store.publish(*({"type": "conversation", "conversation": v} for v in views))
        if views:
            await self._update_positions({v["role"] or "" for v in views}, now)

    async def _update_positions(self, roles: set[str], now: float) -> None:
        """Tell the next few in line their new place (throttled per conversation)."""
        r = self.store.redis
        bot = []
        for role in roles:
            for cid in await r.zrange(self.bus.keys.queue(role), 0, 9):
                view = await self.store.get(cid.decode(), messages=False)
                if not view or not view["position"]:
                    continue
                if now - float(view["flags"].get("position_at") or 0) < self.settings.router.position_updates:
                    continue
                lang = view["customer"]["language"] or "zh"
                text = self.templates.text("queue_position", lang, channel=view["channel"], role=role,
                                           position=view["position"])
                bot.append((view, f"m_pos_{view['id']}_{now:.0f}", text, "flag:position_at", f"{now:.0f}"))
        await self.store.bot_messages(bot, self._bot_name(), now)

    async def _auto_away(self, now: float) -> None:
        after = self.settings.router.auto_away_after
        if not after:
            return
        r = self.store.redis
        for a in await r.smembers(self.bus.keys.agents_online):
            last = await r.hget(self.bus.keys.agent(a.decode()), "last_active")
            if last is not None and now - float(last) > after:
                await self.store.set_presence(a.decode(), "away", now)
                await self.store.publish({"type": "agent", "agent": {"id": a.decode(), "status": "away",
                                                                     "reason": "inactive"}})
