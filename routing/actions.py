"""What an agent can do to a conversation, wherever they do it from.

The agent API and the chat-app bridges (an agent answering from Telegram or
QQ) both go through here, so permissions (routing/permissions.py), ownership
rules, live events, queue draining and the audit stream (storage/audit.py)
are the same everywhere and the record is one.  `via` names where the agent
acted: console, api, telegram or qq.
"""
from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from routing import permissions, quick_replies
from routing.config import AgentConfig
from routing.permissions import SUPERVISOR
from routing.router import Router
from storage.audit import AuditLog
from storage.conversations import ConversationError, ConversationStore

if TYPE_CHECKING:
    from aggregator.config import Settings

REFUSALS = {
    "not_found": (404, "conversation not found"),
    "forbidden": (403, "this conversation belongs to a role you do not have"),
    "not_permitted": (403, "your roles do not allow this"),
    "closed": (409, "conversation is closed"),
    "owned": (409, "conversation is owned by another agent"),
    "unknown_agent": (404, "no such agent"),
    "agent_offline": (409, "that agent is not online"),
    "unknown_role": (404, "no such role"),
    "unknown_quick_reply": (400, "no quick reply by that name (see GET /api/quick_replies)"),
}


class Unfilled(ConversationError):
    """A reply would send a variable's raw braces: the agent must give its value first."""

    def __init__(self, missing: list[str], quick_reply: str = ""):
        super().__init__("unfilled_variable")
        self.missing = missing
        self.quick_reply = quick_reply

    def sentence(self) -> str:
        names = ", ".join(self.missing)
        if self.quick_reply:
            given = " ".join(f"{v}=..." for v in self.missing)
            return f"quick reply {self.quick_reply} needs {names}: send /q {self.quick_reply} {given}"
        return "fill in " + ", ".join("{" + v + "}" for v in self.missing) + " before sending"


def refusal(exc: ConversationError) -> tuple[int, str]:
    """HTTP status and a sentence for an agent, for a refused action."""
    if isinstance(exc, Unfilled):
        return 400, exc.sentence()
    status, message = REFUSALS.get(exc.code, (409, exc.code))
    if exc.code == "owned" and exc.owner:
        message = f"conversation is owned by {exc.owner}; ask them or a supervisor to transfer it"
    return status, message


class AgentActions:
    def __init__(self, settings: Settings, store: ConversationStore, router: Router):
        self.settings = settings
        self.store = store
        self.router = router
        self.audit = AuditLog(store.redis, store.keys)

    def agent(self, agent_id: str) -> AgentConfig | None:
        return next((a for a in self.settings.agents if a.id == agent_id), None)

    @staticmethod
    def may_override(agent: AgentConfig) -> bool:
        return SUPERVISOR in agent.roles

    def permissions(self, agent: AgentConfig) -> list[str]:
        return sorted(permissions.permissions_of(agent, self.settings.roles))

    def holds(self, agent: AgentConfig, permission: str) -> bool:
        return permissions.holds(agent, permission, self.settings.roles)

    async def view(self, agent: AgentConfig, cid: str, *, via: str, messages: bool = True,
                   limit: int = 1000, action: str = "view") -> dict:
        """The conversation, if the agent may see it; raises ConversationError
        (not_found, forbidden — a refusal is audited as `action`)."""
        conv = await self.store.get(cid, messages=messages, limit=limit)
        if conv is None:
            raise ConversationError("not_found")
        if not permissions.may_see(agent, conv):
            await self.audit.record(agent.id, action, via=via, conversation=cid, reason="forbidden")
            raise ConversationError("forbidden")
        return conv

    async def reply(self, agent: AgentConfig, cid: str, text: str, via: str = "console",
                    attachments: list[dict] | None = None) -> dict:
        """Store and queue a reply; raises ConversationError. `via` records the app used
        (never shown to the customer).  `/q name [variable=value ...]` sends the quick
        reply `name`; a variable left without a value refuses the reply (Unfilled).
        `attachments`: descriptions from storage/attachments.py."""
        async def work() -> dict:
            nonlocal text
            conv = await self._may_act(agent, cid)
            if text.startswith("/q "):
                name, given = quick_replies.parse_command(text[3:])
                filled = quick_replies.expand(self.settings, name, conv, agent, given)
                if filled is None:
                    raise ConversationError("unknown_quick_reply")
                if filled.missing:
                    raise Unfilled(filled.missing, name)
                text = filled.text
            elif missing := quick_replies.unfilled(self.settings, text):
                raise Unfilled(missing)
            msg, view = await self.store.reply(cid, agent.id, agent.name, self.may_override(agent), text,
                                               attachments, via=via)
            await self.store.publish({"type": "message", "conversation_id": cid, "message": msg},
                                     {"type": "conversation", "conversation": view})
            return msg
        return await self._audited(agent, "reply", cid, via, work)

    async def claim(self, agent: AgentConfig, cid: str, via: str = "console") -> dict:
        async def work() -> dict:
            await self._may_act(agent, cid)
            return await self._changed(await self.store.claim(cid, agent.id, self.may_override(agent)))
        return await self._audited(agent, "claim", cid, via, work)

    async def transfer(self, agent: AgentConfig, cid: str, *, role: str | None = None,
                       to_agent: str | None = None, via: str = "console") -> dict:
        """To a role's queue or to an agent, whichever: the agent needs only be allowed
        to act on the conversation."""
        what, target = ("agent", to_agent) if to_agent else ("role", role or "")

        async def work() -> dict:
            await self._may_act(agent, cid)
            return await self._changed(await self.store.transfer(
                cid, agent.id, self.may_override(agent), what, target, self.router.context(self.router.clock())))
        return await self._audited(agent, "transfer", cid, via, work, detail=f"{what}:{target}")

    async def close(self, agent: AgentConfig, cid: str, via: str = "console") -> dict:
        async def work() -> dict:
            before = await self._may_act(agent, cid)
            conv = await self._changed(await self.store.close(cid, agent.id, self.may_override(agent)))
            if before["status"] == "open":
                await self.router.closed_message(conv)
            await self.router.drain()  # a slot was freed
            return conv
        return await self._audited(agent, "close", cid, via, work)

    async def _may_act(self, agent: AgentConfig, cid: str) -> dict:
        """The conversation (without messages) if the agent may act on it."""
        conv = await self.store.get(cid, messages=False)
        if conv is None:
            raise ConversationError("not_found")
        if not permissions.may_see(agent, conv):
            raise ConversationError("forbidden")
        return conv

    async def _audited(self, agent: AgentConfig, action: str, cid: str, via: str, work, detail: str = ""):
        """Run `work()` and record it, or its refusal, in the audit stream."""
        try:
            result = await work()
        except ConversationError as exc:
            await self.audit.record(agent.id, action, via=via, conversation=cid, reason=exc.code, detail=detail)
            raise
        await self.audit.record(agent.id, action, via=via, conversation=cid, detail=detail)
        return result

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

