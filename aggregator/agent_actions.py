"""What an agent can do to a conversation, wherever they do it from.

The agent API and the chat-app bridges (an agent answering from Telegram or
QQ) both go through here, so ownership rules, live events and queue draining
are the same everywhere and the record is one.
"""
from __future__ import annotations

import secrets
import string

from aggregator.config import AgentConfig, Settings
from routing.router import Router
from storage.conversations import ConversationError, ConversationStore

SUPERVISOR = "supervisor"

REFUSALS = {
    "not_found": (404, "conversation not found"),
    "closed": (409, "conversation is closed"),
    "owned": (409, "conversation is owned by another agent"),
    "unknown_agent": (404, "no such agent"),
    "agent_offline": (409, "that agent is not online"),
    "unknown_role": (404, "no such role"),
    "unknown_quick_reply": (400, "no quick reply by that name (see GET /api/quick_replies)"),
}


def refusal(exc: ConversationError) -> tuple[int, str]:
    """HTTP status and a sentence for an agent, for a refused action."""
    status, message = REFUSALS.get(exc.code, (409, exc.code))
    if exc.code == "owned" and exc.owner:
        message = f"conversation is owned by {exc.owner}; ask them or a supervisor to transfer it"
    return status, message


class AgentActions:
    def __init__(self, settings: Settings, store: ConversationStore, router: Router):
        self.settings = settings
        self.store = store
        self.router = router

    def agent(self, agent_id: str) -> AgentConfig | None:
        return next((a for a in self.settings.agents if a.id == agent_id), None)

    @staticmethod
    def may_override(agent: AgentConfig) -> bool:
        return SUPERVISOR in agent.roles

    async def reply(self, agent: AgentConfig, cid: str, text: str, via: str = "console",
                    attachments: list[dict] | None = None) -> dict:
        """Store and queue a reply; raises ConversationError. `via` records the app used
        (never shown to the customer).  `/q name` sends the quick reply `name`.
        `attachments`: descriptions from storage/attachments.py."""
        if text.startswith("/q "):
            conv = await self.store.get(cid, messages=False)
            if conv is None:
                raise ConversationError("not_found")
            expanded = self.quick_reply_text(text[3:].strip(), conv, agent)
            if expanded is None:
                raise ConversationError("unknown_quick_reply")
            text = expanded
        msg, conv = await self.store.reply(cid, agent.id, agent.name, self.may_override(agent), text,
                                           attachments, via=via)
        await self.store.publish({"type": "message", "conversation_id": cid, "message": msg},
                                 {"type": "conversation", "conversation": conv})
        return msg

    async def claim(self, agent: AgentConfig, cid: str) -> dict:
        return await self._changed(await self.store.claim(cid, agent.id, self.may_override(agent)))

    async def transfer(self, agent: AgentConfig, cid: str, *, role: str | None = None,
                       to_agent: str | None = None) -> dict:
        what, target = ("agent", to_agent) if to_agent else ("role", role or "")
        return await self._changed(await self.store.transfer(
            cid, agent.id, self.may_override(agent), what, target, self.router.context(self.router.clock())))

    async def close(self, agent: AgentConfig, cid: str) -> dict:
        before = await self.store.get(cid, messages=False)
        conv = await self._changed(await self.store.close(cid, agent.id, self.may_override(agent)))
        if before is not None and before["status"] == "open":
            await self.router.closed_message(conv)
        await self.router.drain()  # a slot was freed
        return conv

    def quick_reply_text(self, name: str, conv: dict, agent: AgentConfig) -> str | None:
        """The quick reply `name` expanded for this conversation, or None if unknown."""
        qr = next((q for q in self.settings.quick_replies if q.name == name), None)
        if qr is None:
            return None
        text = qr.text if isinstance(qr.text, str) else (
            qr.text.en if (conv["customer"].get("language") or "zh").startswith("en") else qr.text.zh)
        attrs = conv["customer"].get("attributes") or {}
        values = {**{k: str(v) for k, v in attrs.items()}, "customer_name": conv["customer"].get("name") or "",
                  "agent_name": agent.name, "channel": conv["channel"],
                  "order_no": str(attrs.get("order_no") or conv.get("order_no") or "")}
        return string.Formatter().vformat(text, (), _Defaulting(values))

    # -- linking a chat-app account to an agent ---------------------------------
    async def create_link_code(self, agent: AgentConfig, ttl: int = 600) -> str:
        code = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(8))
        await self.store.redis.set(self.store.keys.link_code(code), agent.id, ex=ttl)
        return code

    async def redeem_link_code(self, code: str, app: str, user_id: str) -> AgentConfig | None:
        """Link `user_id` on `app` ("telegram"/"qq") to the code's agent; the code is single-use."""
        r = self.store.redis
        agent_id = await r.getdel(self.store.keys.link_code(code.strip().upper()))
        agent = self.agent(agent_id.decode()) if agent_id else None
        if agent is not None:
            await r.set(self.store.keys.chat_link(app, str(user_id)), agent.id)
        return agent

    async def linked_agent(self, app: str, user_id: str | int) -> AgentConfig | None:
        """The agent a chat-app account belongs to: config.yaml first, then run-time links."""
        field = {"telegram": "telegram_id", "qq": "qq_id"}[app]
        for a in self.settings.agents:
            if getattr(a, field) is not None and str(getattr(a, field)) == str(user_id):
                return a
        agent_id = await self.store.redis.get(self.store.keys.chat_link(app, str(user_id)))
        return self.agent(agent_id.decode()) if agent_id else None

    def chat_account(self, app: str, agent: AgentConfig) -> str | None:
        """The agent's account on `app` from config.yaml (run-time links: see linked_accounts)."""
        v = getattr(agent, {"telegram": "telegram_id", "qq": "qq_id"}[app])
        return str(v) if v is not None else None

    async def _changed(self, conv: dict) -> dict:
        await self.store.publish({"type": "conversation", "conversation": conv})
        return conv


class _Defaulting(dict):
    """Unknown template variables stay visible as {name} instead of raising."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"
